"""What the fault tests share: the environment of an `ekimo` process on the tests' own cluster,
catalog files, waiting with a deadline, and the checks every fault test makes (the answer, nothing
partial, nothing left `running`)."""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import psycopg

from ekimo import db
from ekimo.settings import Settings
from tests.conftest import PASSWORD, TEST_SECRET
from tests.faults.ekimo_process import Served, bytecode_cached
from tests.problems import problem_of

# No wait of a fault test lasts longer than this; most end in well under a second.
DEADLINE_SECONDS = 45.0
POLL_SECONDS = 0.02
# Enough rows for an import that lasts a second or more (COPY, then MERGE) on these machines,
# so the fault lands while it runs; its file is about 11 MB.
BIG_IMPORT_ROWS = 200_000

# The statements an import spends its time in: the COPY of the file, then the MERGE.
IMPORT_STEPS = {"COPY": 'COPY "import_raw"%', "MERGE": "%MERGE INTO products%"}
IMPORT_AT_WORK = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
    AND query LIKE ANY(%s)
"""


def ekimo_env(database_url: str, pycache: Path, **extra: str) -> dict[str, str]:
    """The environment of an `ekimo` process on `database_url`: none of ekimo's settings from
    this environment but REDIS_URL (the queue: Redis when the run has one, else PostgreSQL), a
    queue of its own, and `extra` (e.g. SYNC_BASE_URL="...")."""
    names = {f.upper() for f in Settings.__struct_fields__} - {"REDIS_URL"}
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("EKIMO_")}
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=TEST_SECRET,
        EKIMO_QUEUE_NAME=f"ekimo-faults-{secrets.token_hex(4)}",
        # A scheduled sync that starts during a test goes nowhere, at once.
        SYNC_BASE_URL="http://127.0.0.1:9",
        SYNC_MAX_ATTEMPTS="1",
    )
    env.update(extra)
    return bytecode_cached(env, pycache)


def barcode(n: int) -> str:
    return f"{n:013d}"


@functools.cache
def products_csv(count: int, start: int = 1) -> bytes:
    """A clean catalog of `count` products from barcode `start`; a barcode's values are the same
    in every file, so overlapping files agree."""
    lines = ["barcode,name,price,quantity,last_updated"]
    lines += [
        f"{n:013d},Product {n},{n % 100000 / 100:.2f},{n % 997},2025-01-02T03:04:05"
        for n in range(start, start + count)
    ]
    return ("\n".join(lines) + "\n").encode()


def wait_until(
    condition: Callable[[], object],
    what: str | Callable[[], str],
    timeout: float = DEADLINE_SECONDS,
) -> None:
    """Poll `condition` until it is true; fail, naming `what`, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not within {timeout:.0f} s: {what if isinstance(what, str) else what()}"
            )
        time.sleep(POLL_SECONDS)


def query(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """`sql`'s rows, on a connection of its own (any earlier one may be gone with a restart)."""
    with psycopg.connect(db.libpq_url(database_url), autocommit=True, connect_timeout=10) as conn:
        return conn.execute(sql.encode(), params or None).fetchall()


def scalar(database_url: str, sql: str, *params: object) -> Any:
    return query(database_url, sql, *params)[0][0]


def import_at_work(database_url: str, *steps: str) -> bool:
    """Whether an import is at one of `steps` ("COPY", "MERGE"; default: either) in that
    database right now."""
    patterns = [IMPORT_STEPS[step] for step in steps or IMPORT_STEPS]
    return bool(scalar(database_url, IMPORT_AT_WORK, patterns))


def not_done(future: Future[Any]) -> Callable[[], bool]:
    """Whether `future` (e.g. a request in a thread) is still going, asked later."""
    return lambda: not future.done()


def wait_for_import_at_work(
    database_url: str, still_going: Callable[[], bool], *steps: str
) -> None:
    """Until an import is at one of `steps` in the database; fails at once if it ended first."""

    def at_work() -> bool:
        assert still_going(), f"the import ended before its {named}: use a bigger file"
        return import_at_work(database_url, *steps)

    named = " or ".join(steps or IMPORT_STEPS)
    wait_until(at_work, f"an import at its {named}")


def assert_nothing_running(database_url: str) -> None:
    """No import and no sync run is left `queued` or `running`."""
    left = query(
        database_url,
        "SELECT 'import', id, status FROM imports WHERE status IN ('queued', 'running') "
        "UNION ALL SELECT 'sync run', id, status FROM sync_runs WHERE status = 'running'",
    )
    assert left == [], f"left unfinished: {left}"


def insert_pending_products(database_url: str, count: int) -> None:
    """Products 1..`count` (barcodes as `barcode(n)`), never synced, written as an import
    would have."""
    query(
        database_url,
        "WITH inserted AS (INSERT INTO products (barcode, name, price, quantity, last_updated, "
        "version, created_at, updated_at) SELECT lpad(g::text, 13, '0'), 'P' || g, "
        "g * 0.25, g %% 7, timestamptz '2025-01-02 03:04:05+00' + g * interval '1 s', 1, "
        "now(), now() FROM generate_series(1, %s) g RETURNING id, barcode) "
        "INSERT INTO pending_products (product_id, barcode, version, synced_version) "
        "SELECT id, barcode, 1, 0 FROM inserted RETURNING 1",
        count,
    )


def product_count(database_url: str) -> int:
    return int(scalar(database_url, "SELECT count(*) FROM products"))


def login(api_url: str, username: str = "faults", *, create: bool = True) -> dict[str, str]:
    """The bearer header of `username`, its account created first (the first account of a
    database is an admin) unless `create` is false."""
    account = {"username": username, "password": PASSWORD}
    with httpx.Client(base_url=api_url, timeout=30) as http:
        if create:
            created = http.post("/users", json=account)
            assert created.status_code == 201, created.text
        token = http.post("/auth", data=account)
        assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def healthy(api_url: str) -> bool:
    with httpx.Client(base_url=api_url, timeout=10) as http:
        return http.get("/health").status_code == 200


def upload(api_url: str, headers: dict[str, str], data: bytes, **params: str) -> httpx.Response:
    """PUT /products with `data` as products.csv (`params`: e.g. async="true")."""
    with httpx.Client(base_url=api_url, headers=headers, timeout=120) as http:
        return http.put("/products", params=params, files={"file": ("products.csv", data)})


def assert_database_unavailable(response: httpx.Response) -> None:
    """The answer of a request cut by a database outage: a 503 problem document that says so
    and when to try again."""
    problem = problem_of(response, 503)
    assert int(response.headers["Retry-After"]) >= 1
    assert problem["status"] == 503
    assert "database is unavailable" in problem["detail"]
    assert "nothing was written" in problem["detail"]


def import_report(api_url: str, headers: dict[str, str], import_id: int) -> dict[str, Any]:
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as http:
        answer = http.get(f"/imports/{import_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_import(
    api_url: str, headers: dict[str, str], import_id: int, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll GET /imports/{id} until `done(report)`; the report."""
    seen: dict[str, Any] = {}

    def check() -> bool:
        seen.update(import_report(api_url, headers, import_id))
        return done(seen)

    wait_until(check, lambda: f"import {import_id}, still {seen.get('status')}: {seen}")
    return seen


def finished(report: dict[str, Any]) -> bool:
    return report["status"] not in ("queued", "running")


@contextlib.contextmanager
def served_together(env: dict[str, str], cwds: list[Path], *args: str) -> Iterator[list[Served]]:
    """One `ekimo serve` per directory of `cwds`, started at once (their startups overlap),
    all healthy; killed on the way out if the test left them running."""
    servers: list[Served] = []
    try:
        for cwd in cwds:
            cwd.mkdir(parents=True, exist_ok=True)
            servers.append(Served(env, cwd, *args))
        for server in servers:
            server.wait_healthy()
        yield servers
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()


def busy_sessions(database_url: str) -> int:
    """Client sessions in that database at work or in a transaction, but the one asking (the
    idle ones are a pool's)."""
    return int(
        scalar(
            database_url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
            "AND state <> 'idle'",
        )
    )
