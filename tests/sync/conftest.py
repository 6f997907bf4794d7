"""Sync fixtures: the stand-in external API, sender settings, products inserted by SQL."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ekimo import db
from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings
from ekimo.sync.client import RetryPolicy
from ekimo.sync.service import SyncService
from tests.conftest import migrated_database
from tests.sync.fake_api import FakeApi

# Fast retries and a short client timeout: the fault tests need not wait out real backoffs.
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05, max_retry_after=5.0, timeout=0.5)


@pytest.fixture
def sync_settings(container: Container, fake_api: FakeApi) -> Settings:
    return container.settings.with_values(
        sync_base_url=fake_api.url,
        sync_username="ekimo",
        sync_password="secret",
        sync_batch_size=10,
        sync_max_attempts=4,
    )


def make_service(
    container: Container, settings: Settings, *, concurrency: int = 2, policy: RetryPolicy = FAST
) -> SyncService:
    return SyncService(container, settings=settings, policy=policy, concurrency=concurrency)


@pytest.fixture
def service(container: Container, sync_settings: Settings) -> SyncService:
    return make_service(container, sync_settings)


def barcode(n: int) -> str:
    return f"{n:013d}"


async def insert_products(container: Container, count: int, start: int = 1) -> list[str]:
    """`count` pending products (version 1, never synced), barcodes from `barcode(start)`."""
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                """
                WITH inserted AS (
                    INSERT INTO products (barcode, name, price, quantity, last_updated,
                                          version, created_at, updated_at)
                    SELECT lpad(g::text, 13, '0'), 'Product ' || g, g * 1.25, g * 0.5,
                           timestamptz '2025-01-02 03:04:05.123456+00' + g * interval '1 second',
                           1, now(), now()
                    FROM generate_series(CAST(:start AS int), CAST(:stop AS int)) g
                    RETURNING id, barcode
                )
                INSERT INTO pending_products (product_id, barcode, version, synced_version)
                SELECT id, barcode, 1, 0 FROM inserted
                """
            ),
            {"start": start, "stop": start + count - 1},
        )
    return [barcode(n) for n in range(start, start + count)]


async def touch_product(container: Container, code: str, name: str) -> None:
    """An edit, as the import makes it: new data, version + 1."""
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "WITH touched AS (UPDATE products SET name = :name, version = version + 1, "
                "updated_at = now() WHERE barcode = :barcode RETURNING id, barcode, version) "
                "INSERT INTO pending_products (product_id, barcode, version, synced_version) "
                "SELECT id, barcode, version, version - 1 FROM touched "
                "ON CONFLICT (product_id) DO UPDATE SET version = EXCLUDED.version"
            ),
            {"name": name, "barcode": code},
        )


# Each product's barcode, version and last acknowledged version.
SYNCED_VERSIONS = (
    "SELECT p.barcode, p.version, coalesce(s.synced_version, p.version) "
    "FROM products p LEFT JOIN pending_products s ON s.product_id = p.id"
)


async def versions(container: Container) -> dict[str, tuple[int, int]]:
    """barcode -> (version, synced_version)."""
    async with container.engine.connect() as conn:
        rows = await conn.execute(text(SYNCED_VERSIONS))
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}


async def pending(container: Container) -> set[str]:
    return {b for b, (v, s) in (await versions(container)).items() if v > s}


@pytest.fixture
def container_settings_without_credentials(sync_settings: Settings) -> Settings:
    return sync_settings.with_values(sync_username=None, sync_password=None)


@contextlib.asynccontextmanager
async def served_ekimo(settings: Settings) -> AsyncIterator[str]:
    """The real ekimo app on uvicorn, in this process, on a free port of 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Container(settings)),
            log_config=None,
            access_log=False,
            lifespan="on",
            port=port,
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = asyncio.get_running_loop().time() + 30
    while not server.started:
        if task.done() or asyncio.get_running_loop().time() > deadline:
            await task
            raise RuntimeError("ekimo did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def create_account(url: str, username: str, password: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        created = await http.post("/users", json={"username": username, "password": password})
        assert created.status_code == 201, created.text


@pytest.fixture(scope="session")
def receiver_database_url(database_url: str) -> Iterator[str]:
    """A second ekimo database on the same server, for a second ekimo instance."""
    with migrated_database(database_url, "ekimo_test_rx") as url:
        yield url


@pytest.fixture
async def receiver_settings(settings: Settings, receiver_database_url: str) -> Settings:
    rx = settings.with_values(
        database_url=receiver_database_url, queue_name=f"{settings.queue_name}-rx"
    )
    engine = create_async_engine(db.asyncpg_url(receiver_database_url))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "TRUNCATE products, pending_products, users, sync_runs, sync_rejections "
                "RESTART IDENTITY CASCADE"
            )
    finally:
        await engine.dispose()
    return rx
