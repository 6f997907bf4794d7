"""SIGTERM to `ekimo serve` and `ekimo worker`: work in flight gets SHUTDOWN_GRACE_SECONDS,
then is cut cleanly (an import rolled back and answered 503, a queued import put back on the
queue); the process exits 0.

The import is held in flight by the test taking the catalog's write lock first: the import
waits for it after reading its file, so the test knows where it is without timing anything."""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from ekimo import db
from ekimo.container import Container
from ekimo.entry.worker import create_worker
from ekimo.imports.jobs import queue_import
from ekimo.imports.schemas import ImportOptions
from ekimo.products.writes import PRODUCTS_WRITE_LOCK
from ekimo.settings import Settings
from ekimo.shutdown import STOPPING_MESSAGE
from tests.conftest import PASSWORD
from tests.faults.ekimo_process import STOP_SECONDS, Served, bytecode_cached, served, spawned
from tests.problems import problem_of

ROWS = 2000
DEADLINE_S = 30.0


def products_csv(rows: int = ROWS) -> bytes:
    lines = ["name,price,quantity,last_updated,barcode"]
    lines += [
        f"Product {i},{i % 90 + 1}.50,{i % 7},2026-01-01T00:00:00Z,{i:013d}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


async def poll(check: Any, what: str, timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def write_lock_held(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """The catalog's write lock, taken by the test: imports wait for it before writing."""
    assert settings.database_url is not None
    conn = await asyncpg.connect(db.libpq_url(settings.database_url))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", PRODUCTS_WRITE_LOCK)
        yield conn
    finally:
        await conn.close()  # the session lock goes with the connection


async def an_import_waits_for_the_lock(conn: asyncpg.Connection) -> None:
    async def waiting() -> bool:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            )
        )

    await poll(waiting, "the import to wait for the write lock")


def serve_env(cli_env: dict[str, str], tmp: Path, grace: float) -> dict[str, str]:
    env = {
        **cli_env,
        "SHUTDOWN_GRACE_SECONDS": str(grace),
        "EKIMO_QUEUE_NAME": cli_env["EKIMO_QUEUE_NAME"] + "-stop",
    }
    return bytecode_cached(env, tmp / "pycache")


@pytest.fixture
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp()


def login(api: Served) -> dict[str, str]:
    with httpx.Client(base_url=api.url) as http:
        account = {"username": "stopper", "password": PASSWORD}
        assert http.post("/users", json=account).status_code == 201
        token = http.post("/auth", data=account).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def upload(api: Served, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        files = {"file": ("products.csv", products_csv(), "text/csv")}
        return await http.put("/products", files=files, headers=headers)


async def counts(container: Container) -> tuple[int, int]:
    """(products, imports left queued or running)."""
    async with container.engine.connect() as conn:
        products = (await conn.exec_driver_sql("SELECT count(*) FROM products")).scalar_one()
        unfinished = (
            await conn.exec_driver_sql(
                "SELECT count(*) FROM imports WHERE status IN ('queued', 'running')"
            )
        ).scalar_one()
    return int(products), int(unfinished)


@contextlib.asynccontextmanager
async def an_upload_stopped_by_sigterm(
    api: Served, settings: Settings
) -> AsyncIterator[asyncio.Task[httpx.Response]]:
    """An upload waiting for the write lock (held until the block ends) when `ekimo serve`
    gets SIGTERM; its answer to come."""
    headers = login(api)
    async with write_lock_held(settings) as lock:
        answer = asyncio.create_task(upload(api, headers))
        await an_import_waits_for_the_lock(lock)
        api.process.send_signal(signal.SIGTERM)
        yield answer


async def test_an_import_past_the_grace_is_rolled_back_answered_503_and_serve_exits_0(
    cli_env: dict[str, str], pycache: Path, tmp_path: Path, settings: Settings, container: Container
) -> None:
    with served(serve_env(cli_env, pycache, grace=1), tmp_path, "--no-worker") as api:
        async with an_upload_stopped_by_sigterm(api, settings) as answer:
            response = await answer
        status = await asyncio.to_thread(api.process.wait, STOP_SECONDS)

    document = problem_of(response, 503)
    assert document["detail"] == STOPPING_MESSAGE
    assert response.headers["retry-after"].isdigit()
    assert status == 0, api.output
    assert "Traceback" not in api.output
    assert await counts(container) == (0, 0)


async def test_an_import_in_flight_finishes_within_the_grace(
    cli_env: dict[str, str], pycache: Path, tmp_path: Path, settings: Settings, container: Container
) -> None:
    with served(serve_env(cli_env, pycache, grace=60), tmp_path, "--no-worker") as api:
        async with an_upload_stopped_by_sigterm(api, settings) as answer:

            async def refuses_new_connections() -> bool:
                try:
                    async with httpx.AsyncClient(base_url=api.url, timeout=2) as http:
                        await http.get("/health")
                except httpx.TransportError:
                    return True
                return False

            await poll(refuses_new_connections, "serve to stop accepting connections")
            assert not answer.done()
        response = await answer  # the lock is released: the import goes on and finishes
        status = await asyncio.to_thread(api.process.wait, STOP_SECONDS)

    assert response.status_code == 200, response.text
    assert response.json()["created"] == ROWS
    assert status == 0, api.output
    assert await counts(container) == (ROWS, 0)


async def import_status(container: Container, import_id: int) -> str:
    async with container.engine.connect() as conn:
        status = await conn.exec_driver_sql(f"SELECT status FROM imports WHERE id = {import_id}")
        return str(status.scalar_one())


async def test_a_running_async_import_goes_back_to_the_queue_and_the_worker_exits_0(
    cli_env: dict[str, str], pycache: Path, tmp_path: Path, settings: Settings, container: Container
) -> None:
    # The worker process serves this run's queue: the test queues, a later worker finishes.
    env = bytecode_cached({**cli_env, "SHUTDOWN_GRACE_SECONDS": "1"}, pycache / "pycache")
    async with write_lock_held(settings) as lock:
        with spawned(env, tmp_path, "worker", "--no-schedule") as worker:
            import_id = await queue_import(
                container, io.BytesIO(products_csv()), "products.csv", ImportOptions()
            )

            async def running() -> bool:
                return await import_status(container, import_id) == "running"

            await poll(running, "the worker to start the import")
            await an_import_waits_for_the_lock(lock)
            status = await asyncio.to_thread(worker.stop, signal.SIGTERM)
        output = worker.output
        assert status == 0, output
        assert "Traceback" not in output
        assert await import_status(container, import_id) == "queued"
        assert await counts(container) == (0, 1)

    # Put back on the queue with its file: the next worker imports it.
    saq_worker = create_worker(container, handle_signals=False, schedule=False)
    task = asyncio.create_task(saq_worker.start())
    try:

        async def applied() -> bool:
            return await import_status(container, import_id) == "applied"

        await poll(applied, "the next worker to finish the import")
    finally:
        await saq_worker.stop()
        await task
    assert await counts(container) == (ROWS, 0)
