"""Shared fixtures: a database of this run's own, the real app, the real CLI.

With `TEST_DATABASE_URL` set, the run creates a fresh database on that server; without it,
on the embedded server under `./.ekimo/`. Either way the database is dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar import Litestar

from ekimo import db, embedded
from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings
from ekimo.users.auth import reset_rate_limits
from tests.sync.fake_api import FakeApi

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-key-" + "x" * 32
PASSWORD = "correct horse battery"


def _server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return embedded.start_server(ROOT / ".ekimo")


def with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def admin_execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(db.libpq_url(with_database(url, "postgres")))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def migrated_database(server: str, prefix: str) -> Iterator[str]:
    """A new database on `server`, migrated to head, dropped on exit; yields its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(admin_execute(server, f'CREATE DATABASE "{name}"'))
    try:
        url = with_database(server, name)
        db.upgrade(url)
        yield url
    finally:
        asyncio.run(admin_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with migrated_database(_server_url(), "ekimo_test") as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL") or None,
        secret_key=TEST_SECRET,
        state_dir=tmp_path_factory.mktemp("state"),
        queue_name=f"ekimo-test-{secrets.token_hex(4)}",
    )


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[Container]:
    async with Container(settings) as started:
        yield started


TABLES_TO_KEEP = {"alembic_version"}


@pytest.fixture(autouse=True)
async def clean_database(container: Container) -> None:
    """Every test starts from empty tables, whatever ran before it."""
    async with container.engine.begin() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT LIKE 'saq%'"
        )
        tables = [r[0] for r in rows if r[0] not in TABLES_TO_KEEP]
        if tables:
            quoted = ", ".join(f'"{t}"' for t in tables)
            await conn.exec_driver_sql(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


@pytest.fixture(autouse=True)
async def reset_login_rate_limit(container: Container) -> None:
    """Login attempts counted in Redis by an earlier test don't count against this one."""
    await reset_rate_limits(container)


@contextlib.asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """`app` started (its lifespan) and an HTTP client that calls it in-process, on the test's
    own event loop: the app and the test can share one container and its connections."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        # A task of its own: the lifespan's task group must end in the task that began it,
        # and a fixture's setup and teardown run in different tasks.
        async with app.lifespan():
            started.set()
            await stop.wait()

    lifespan = asyncio.create_task(run())
    await asyncio.wait(
        [lifespan, asyncio.ensure_future(started.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    if lifespan.done():
        lifespan.result()  # the startup failed: raise its error here
    transport = httpx.ASGITransport(app=app)  # pyright: ignore[reportArgumentType] (ASGI typings differ)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver.local", follow_redirects=True
        ) as test_client:
            yield test_client
    finally:
        stop.set()
        await lifespan


@pytest.fixture
def app(container: Container) -> Litestar:
    """The real app (routes, plugins) on the run's one container."""
    return create_app(container)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The real app over ASGI, started and stopped per test."""
    async with serve(app) as test_client:
        yield test_client


async def register_and_login(
    client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD
) -> dict[str, str]:
    created = await client.post("/users", json={"username": username, "password": password})
    assert created.status_code == 201, created.text
    token = await client.post("/auth", data={"username": username, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture
async def auth_headers(client: httpx.AsyncClient) -> dict[str, str]:
    return await register_and_login(client)


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for running `ekimo` as a subprocess against this run's database."""
    assert settings.database_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNC_", "EKIMO_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        SECRET_KEY=TEST_SECRET,
        EKIMO_QUEUE_NAME=settings.queue_name,
    )
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    else:
        env.pop("REDIS_URL", None)
    return env


def run_cli(
    env: dict[str, str], *args: str, input: str | bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `ekimo` command (as `python -m ekimo`) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ekimo", *args],
        env=env,
        input=input.decode() if isinstance(input, bytes) else input,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or ROOT,
        check=False,
    )


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeApi]:
    """A real HTTP server standing in for the external API (see `tests.sync.fake_api`)."""
    api = FakeApi()
    await api.start()
    yield api
    await api.stop()
