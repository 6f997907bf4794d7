"""A database whose migrations have not run (or not all of them): every answer says so and
names the command that fixes it; nothing is a 500 or a traceback."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from ekimo import db
from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings
from tests.conftest import PASSWORD, admin_execute, run_cli, serve, with_database
from tests.web.conftest import Console

FIX = "ekimo db upgrade"
CREDENTIALS = {"username": "alice", "password": PASSWORD}


async def _new_database(settings: Settings, revision: str | None) -> AsyncIterator[str]:
    assert settings.database_url is not None
    name = f"{settings.database_url.rsplit('/', 1)[1].split('?')[0]}_{secrets.token_hex(3)}"
    await admin_execute(settings.database_url, f'CREATE DATABASE "{name}"')
    try:
        url = with_database(settings.database_url, name)
        if revision is not None:
            await db.upgrade_async(url, revision)
        yield url
    finally:
        await admin_execute(settings.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_database(settings: Settings) -> AsyncIterator[str]:
    """A database no migration has touched."""
    async for url in _new_database(settings, None):
        yield url


@pytest.fixture
async def behind_database(settings: Settings) -> AsyncIterator[str]:
    """A database one migration behind the code (no `revoked_tokens`, which log-in reads)."""
    async for url in _new_database(settings, "0009_pending_products"):
        yield url


async def _client(settings: Settings, url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(Container(settings.with_values(database_url=url)))) as client:
        yield client


def _says_unmigrated(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert FIX in response.json()["detail"], response.text


async def _health_says_unmigrated(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 503, health.text
    assert health.json()["database"] == "not migrated"


async def test_api_on_an_empty_database_says_to_migrate(
    settings: Settings, empty_database: str
) -> None:
    async for client in _client(settings, empty_database):
        await _health_says_unmigrated(client)
        _says_unmigrated(await client.post("/users", json=CREDENTIALS))
        _says_unmigrated(await client.post("/auth", json=CREDENTIALS))
        page = await Console(client, "alice").post("/ui/login", data=CREDENTIALS)
        assert page.status_code == 503, page.text
        assert page.headers["retry-after"].isdigit()
        assert FIX in page.text


async def test_api_one_migration_behind_says_to_migrate(
    settings: Settings, behind_database: str
) -> None:
    async for client in _client(settings, behind_database):
        await _health_says_unmigrated(client)
        # Signing up and logging in touch nothing new; a signed-in request reads the
        # account's revoked tokens.
        assert (await client.post("/users", json=CREDENTIALS)).status_code == 201
        login = await client.post("/auth", json=CREDENTIALS)
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        _says_unmigrated(await client.get("/products", headers=bearer))
        # The operator runs the fix, and the same process serves the next request.
        await db.upgrade_async(behind_database)
        assert (await client.get("/health")).json()["database"] == "ok"
        assert (await client.get("/products", headers=bearer)).status_code == 200


async def test_a_newer_ekimos_schema_is_healthy(settings: Settings, behind_database: str) -> None:
    await db.upgrade_async(behind_database)
    conn = await asyncpg.connect(db.libpq_url(behind_database))
    try:
        await conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    finally:
        await conn.close()
    async for client in _client(settings, behind_database):
        health = await client.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["database"] == "ok"


@pytest.mark.parametrize("command", [("sync",), ("import", "products.csv"), ("users", "create")])
def test_cli_on_an_empty_database_says_to_migrate(
    cli_env: dict[str, str], empty_database: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "products.csv").write_text(
        "barcode,name,price,quantity,last_updated\n4006381333931,Pen,1.50,3,2024-01-01\n"
    )
    env = {**cli_env, "DATABASE_URL": empty_database}
    args = [*command, "alice", "--password-stdin"] if command == ("users", "create") else command
    result = run_cli(env, *args, input=PASSWORD + "\n", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert FIX in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
