"""Foundation: settings, health, docs served offline, problem documents, the CLI."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ekimo import db
from ekimo.container import Container
from ekimo.settings import Settings, SettingsError, load_settings
from tests.conftest import ROOT, run_cli, serve


def test_settings_defaults_without_environment(tmp_path: Path) -> None:
    settings = load_settings({}, env_file=tmp_path / "missing.env")
    assert settings.embedded
    assert settings.sync_batch_size == 5000
    assert settings.sync_base_url == "http://127.0.0.1:8000"
    assert settings.max_upload_bytes == 100 * 1024 * 1024


def test_settings_read_dotenv_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SYNC_BATCH_SIZE=42\nMAX_UPLOAD_MB=7\n")
    settings = load_settings({"MAX_UPLOAD_MB": "9"}, env_file=env_file)
    assert settings.sync_batch_size == 42
    assert settings.max_upload_mb == 9


def test_settings_read_the_state_dir_and_access_settings(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "EKIMO_STATE_DIR": str(tmp_path / "state"),
            "REGISTRATION": "closed",
            "REGISTRATION_ROLE": "viewer",
            "SYNC_API_KEY": "ekimo_abc",
        },
        env_file=tmp_path / "missing.env",
    )
    assert settings.state_dir == tmp_path / "state"
    assert (settings.registration, settings.registration_role) == ("closed", "viewer")
    assert settings.sync_api_key == "ekimo_abc"
    with pytest.raises(SettingsError, match="REGISTRATION"):
        load_settings({"REGISTRATION": "ajar"}, env_file=tmp_path / "missing.env")


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"SYNC_BATCH_SIZE": "many"}, "SYNC_BATCH_SIZE"),
        ({"SYNC_BATCH_SIZE": "0"}, "SYNC_BATCH_SIZE"),
        ({"ACCESS_TOKEN_EXPIRE_MINUTES": "-5"}, "ACCESS_TOKEN_EXPIRE_MINUTES"),
        ({"DATABASE_URL": "mysql://x/y", "SECRET_KEY": "k" * 40}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://x/y"}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"SYNC_BASE_URL": "ftp://x"}, "SYNC_BASE_URL"),
    ],
)
def test_bad_settings_name_the_variable(
    tmp_path: Path, environ: dict[str, str], variable: str
) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(environ, env_file=tmp_path / "missing.env")


def test_serve_refuses_to_start_without_secret_key(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in cli_env.items() if k != "SECRET_KEY"}
    result = run_cli(env, "serve", "--port", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr


async def test_health_reports_database_and_queue(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "queue": "ok"}


async def test_health_is_503_naming_the_database_when_it_is_down(settings: Settings) -> None:
    from ekimo.entry.app import create_app
    from tests.conftest import admin_execute, with_database

    assert settings.database_url is not None
    name = f"{settings.database_url.rsplit('/', 1)[1].split('?')[0]}_outage"
    await admin_execute(settings.database_url, f'CREATE DATABASE "{name}"')
    try:
        outage = settings.with_values(database_url=with_database(settings.database_url, name))
        await db.upgrade_async(with_database(settings.database_url, name))
        async with serve(create_app(Container(outage))) as client:
            assert (await client.get("/health")).status_code == 200
            # A real outage: the database refuses new connections and drops the open ones.
            await admin_execute(
                settings.database_url,
                f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
            )
            response = await client.get("/health")
            assert response.status_code == 503
            assert response.json()["status"] == "unavailable"
            assert response.json()["database"] == "unavailable"
    finally:
        await admin_execute(settings.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_docs_are_served_with_local_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets, page.text
    for asset in assets:
        assert asset.startswith("/docs/"), f"{asset} is not served by ekimo"
        fetched = await client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 100
    schema = await client.get("/docs/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.1")


async def test_openapi_documents_every_error_as_a_problem_document(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/docs/openapi.json")).json()
    errors = {
        (path, method, code): response.get("content", {})
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        for code, response in operation["responses"].items()
        if code.startswith(("4", "5")) and path != "/health"
    }
    assert ("/products", "put", "401") in errors
    not_problems = {
        key for key, content in errors.items() if "application/problem+json" not in content
    }
    assert not not_problems, sorted(not_problems)


async def test_every_problem_document_has_a_title(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.get("/sync/runs/999", headers=auth_headers)
    assert response.status_code == 404
    assert response.json()["title"] == "Not Found"
    assert "999" in response.json()["detail"]


async def test_a_bad_parameter_says_what_to_fix_in_detail(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/users", content=b"{bad", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Bad Request"
    assert "JSON is malformed" in body["detail"]


async def test_unknown_route_is_a_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


def test_db_upgrade_downgrade_upgrade(cli_env: dict[str, str]) -> None:
    for args in (("db", "upgrade"), ("db", "downgrade", "base"), ("db", "upgrade")):
        result = run_cli(cli_env, *args)
        assert result.returncode == 0, result.stderr


def test_python_dash_m_shows_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ekimo", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0
    for command in ("serve", "worker", "db", "import", "sync", "users"):
        assert command in result.stdout


def test_the_cli_loads_the_database_and_web_layers_only_for_the_commands_using_them() -> None:
    # They take seconds to import; `ekimo --help` and usage errors need neither.
    probe = (
        "import sys, ekimo.entry.cli, ekimo.users.rules; "
        "print(sorted(m for m in ('sqlalchemy', 'advanced_alchemy', 'litestar', 'uvicorn', "
        "'asyncpg') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_serve_runs_the_whole_service(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = _free_port()
    # A queue of its own: the cron jobs its worker queues would outlive it and run in other tests.
    env = {**cli_env, "EKIMO_QUEUE_NAME": cli_env["EKIMO_QUEUE_NAME"] + "-serve"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ekimo", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 60
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            while True:
                try:
                    response = await http.get("/health")
                    break
                except httpx.TransportError:
                    assert process.poll() is None, "ekimo serve exited early"
                    assert asyncio.get_running_loop().time() < deadline, "serve did not start"
                    await asyncio.sleep(0.2)
            assert response.status_code == 200
            assert response.json()["status"] == "ok"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert re.search(r"GET /health 200 [0-9.]+ms", output), output
