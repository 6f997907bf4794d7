# ekimo tasks. `just` alone lists them; every tool runs through uv.
# Variadic `*args` are passed on, e.g. `just test -k sync -x`.

# List the recipes
default:
    @{{just_executable()}} --list --unsorted

# Build and start the stack (postgres, redis, migrate, api, worker) in the background
up:
    docker compose up --build -d
    @echo "ekimo is starting: http://localhost:8000/docs"

# Stop and remove the stack's containers (the pgdata volume is kept)
down:
    docker compose down

# Follow the stack's logs (e.g. `just logs api`)
logs *args:
    docker compose logs --follow {{args}}

# Run the API locally (embedded PostgreSQL unless DATABASE_URL is set)
serve *args:
    uv run ekimo serve {{args}}

# Run the SAQ worker locally
worker *args:
    uv run ekimo worker {{args}}

# Run the test suite (pytest arguments pass through)
test *args:
    uv run pytest {{args}}

# Retake the console's screenshots in docs/ (the browser tests, photographing as they go)
screenshots:
    EKIMO_SCREENSHOTS=docs uv run pytest tests/web/browser -q

# Check formatting, lint, types, the architecture's import rules, compose file, workflows and Containerfile
lint:
    uv run ruff format --check
    uv run ruff check
    uv run pyright
    uv run lint-imports
    uv run check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
    uv run check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
    uv run hadolint Containerfile

# Format the code and apply ruff's safe fixes
fmt:
    uv run ruff format
    uv run ruff check --fix

# Run the benchmarks (arguments pass through)
bench *args:
    uv run python -m benchmarks {{args}}

# Apply the database migrations up to head
migrate:
    uv run ekimo db upgrade

# Create a migration from the models, e.g. `just revision "add sku index"`
revision message:
    uv run ekimo db revision -m {{quote(message)}}

# Import a CSV/XLSX file, e.g. `just import products.csv --dry-run`
import file *args:
    uv run ekimo import {{quote(file)}} {{args}}

# Run one sync to the external API now
sync *args:
    uv run ekimo sync {{args}}
