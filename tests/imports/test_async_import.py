"""PUT /products?async=true and `ekimo import --async`: queued, running, then the report."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from ekimo.container import Container
from ekimo.entry.worker import create_worker
from ekimo.products.writes import PRODUCTS_WRITE_LOCK
from ekimo.settings import Settings
from tests.conftest import run_cli

Client = httpx.AsyncClient


def product_csv(count: int, bad_rows: int = 0) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["barcode", "name", "price", "quantity"])
    for i in range(count):
        writer.writerow([f"{i:013d}", f"Item {i}", "1.25", "3"])
    for i in range(bad_rows):
        writer.writerow([f"x{i}", "Bad", "1", "1"])
    return buffer.getvalue().encode()


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Callable[[], None]]:
    """Call the fixture's value to start a real SAQ worker (same queue as the app).

    The worker has a container of its own, as `ekimo worker` would: SAQ's queue objects keep
    dequeue state in memory, so one is never shared by successive workers.
    """
    started: list[asyncio.Task[None]] = []
    async with Container(settings) as own:
        saq_worker = create_worker(own, handle_signals=False, schedule=False)

        def start() -> None:
            started.append(asyncio.create_task(saq_worker.start()))

        yield start
        if started:
            await saq_worker.stop()
            started[0].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await started[0]


async def poll(
    client: Client,
    headers: dict[str, str],
    location: str,
    until: Callable[[dict[str, Any]], bool],
    seconds: float = 120,
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get(location, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        if until(body):
            return body
        assert time.monotonic() < deadline, f"gave up waiting; last state: {body}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def products_locked(container: Container) -> AsyncIterator[None]:
    """Hold the products write lock: an import reads every row, then waits to apply them."""
    async with container.engine.connect() as blocker:
        await blocker.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PRODUCTS_WRITE_LOCK})
        yield
        await blocker.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PRODUCTS_WRITE_LOCK})


async def queue_file(client: Client, headers: dict[str, str], name: str, content: bytes) -> Any:
    """PUT /products?async=true of a file; the response."""
    return await client.put(
        "/products", params={"async": "true"}, files={"file": (name, content)}, headers=headers
    )


async def queue_csv(client: Client, headers: dict[str, str], name: str, rows: int) -> Any:
    """PUT /products?async=true of a CSV of `rows` products; the 202 response."""
    response = await queue_file(client, headers, name, product_csv(rows))
    assert response.status_code == 202, response.text
    return response


async def test_async_import_is_queued_runs_and_reports(
    client: Client,
    auth_headers: dict[str, str],
    container: Container,
    worker: Callable[[], None],
) -> None:
    count = 20_000
    async with products_locked(container):
        response = await queue_csv(client, auth_headers, "big.csv", count)
        location = response.headers["location"]
        assert location == f"/imports/{response.json()['import_id']}"
        assert response.json()["status"] == "queued"

        queued = (await client.get(location, headers=auth_headers)).json()
        assert queued["status"] == "queued"
        assert queued["finished_at"] is None

        worker()
        running = await poll(
            client, auth_headers, location, lambda b: b["status"] == "running" and b["rows_done"]
        )
        # Every row has been read (the count may include the header line): the import waits
        # for the lock, still running.
        running = await poll(client, auth_headers, location, lambda b: b["rows_done"] >= count)
        assert running["status"] == "running"
        listed = (await client.get("/imports", headers=auth_headers)).json()["items"][0]
        assert listed["status"] == "running"
        assert listed["rows_done"] >= count

    done = await poll(client, auth_headers, location, lambda b: b["status"] != "running")
    assert done["status"] == "applied", done
    assert (done["rows"], done["created"], done["rows_done"]) == (count, count, None)
    assert done["finished_at"] is not None
    async with container.engine.connect() as conn:
        stored = await conn.exec_driver_sql("SELECT count(*) FROM products")
        assert stored.scalar_one() == count
    # The job deletes the stored file right after the import.
    deadline = time.monotonic() + 30
    while True:
        async with container.engine.connect() as conn:
            chunks = await conn.scalar(text("SELECT count(*) FROM import_upload_chunks"))
        if chunks == 0:
            break
        assert time.monotonic() < deadline, "the stored file was not deleted"
        await asyncio.sleep(0.05)


async def test_async_import_with_bad_rows_is_rejected_with_an_error_file(
    client: Client, auth_headers: dict[str, str], worker: Callable[[], None]
) -> None:
    worker()
    response = await queue_file(client, auth_headers, "mixed.csv", product_csv(5, bad_rows=2))
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    done = await poll(
        client, auth_headers, location, lambda b: b["status"] not in ("queued", "running")
    )
    assert done["status"] == "rejected"
    assert (done["rows"], done["rejected"], done["created"]) == (7, 2, 0)
    errors = await client.get(done["errors_csv"], headers=auth_headers)
    lines = list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig"), newline="")))
    assert [line[0] for line in lines] == ["barcode", "x0", "x1"]


async def test_an_import_id_used_before_a_database_reset_is_still_imported(
    client: Client,
    auth_headers: dict[str, str],
    container: Container,
    worker: Callable[[], None],
) -> None:
    # An import queued on a database that is then reset: its job was taken by a worker that
    # died (it stays active in the queue), and the reset gives its id to the next import.
    first = await queue_csv(client, auth_headers, "before-reset.csv", 3)
    assert await container.queue.dequeue(timeout=5) is not None
    async with container.engine.begin() as conn:
        await conn.execute(text("TRUNCATE imports RESTART IDENTITY CASCADE"))

    second = await queue_csv(client, auth_headers, "after-reset.csv", 4)
    assert second.headers["location"] == first.headers["location"]
    worker()
    done = await poll(
        client,
        auth_headers,
        second.headers["location"],
        lambda b: b["status"] not in ("queued", "running"),
    )
    assert (done["status"], done["filename"], done["created"]) == ("applied", "after-reset.csv", 4)


async def test_async_import_problems(
    client: Client, auth_headers: dict[str, str], worker: Callable[[], None]
) -> None:
    wrong_type = await queue_file(client, auth_headers, "notes.txt", b"hello")
    assert wrong_type.status_code == 400
    assert wrong_type.headers["content-type"].startswith("application/problem+json")

    worker()
    unreadable = await queue_file(client, auth_headers, "broken.xlsx", b"not a zip")
    assert unreadable.status_code == 202
    done = await poll(
        client,
        auth_headers,
        unreadable.headers["location"],
        lambda b: b["status"] not in ("queued", "running"),
    )
    assert done["status"] == "rejected"
    assert "zip" in done["errors"][0]["message"]

    running = await client.get(f"{unreadable.headers['location']}/errors.csv", headers=auth_headers)
    assert running.status_code == 200


async def test_cli_import_async(
    client: Client,
    auth_headers: dict[str, str],
    cli_env: dict[str, str],
    tmp_path: Path,
    worker: Callable[[], None],
) -> None:
    path = tmp_path / "cli.csv"
    path.write_bytes(product_csv(10))
    result = await asyncio.to_thread(run_cli, cli_env, "import", "--async", "--json", str(path))
    assert result.returncode == 0, result.stderr
    queued = json.loads(result.stdout)
    assert queued["status"] == "queued"
    worker()
    done = await poll(
        client, auth_headers, queued["location"], lambda b: b["status"] not in ("queued", "running")
    )
    assert (done["status"], done["created"], done["filename"]) == ("applied", 10, "cli.csv")

    bad = await asyncio.to_thread(run_cli, cli_env, "import", "--async", str(tmp_path / "x.pdf"))
    assert bad.returncode == 2


async def until_none(container: Container, count_query: str, message: str) -> None:
    """Poll `count_query` until it counts 0 (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        async with container.engine.connect() as conn:
            if await conn.scalar(text(count_query)) == 0:
                return
        assert time.monotonic() < deadline, message
        await asyncio.sleep(0.05)


async def test_an_import_whose_worker_dies_is_marked_failed(
    client: Client,
    auth_headers: dict[str, str],
    container: Container,
    cli_env: dict[str, str],
    worker: Callable[[], None],
) -> None:
    async with products_locked(container):  # the import is running when its worker is killed
        response = await queue_csv(client, auth_headers, "doomed.csv", 5_000)
        location = response.headers["location"]
        dying = subprocess.Popen(
            # No schedule: the cron jobs it would queue would outlive it and run in later tests.
            [sys.executable, "-m", "ekimo", "worker", "--no-schedule"],
            env=cli_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await poll(client, auth_headers, location, lambda b: b["status"] == "running")
        finally:
            dying.kill()
            await asyncio.to_thread(dying.wait)

    # Still `running` on record. Once PostgreSQL has closed the dead worker's connections (and
    # so released its lock), a worker that starts finds nobody importing it.
    assert (await client.get(location, headers=auth_headers)).json()["status"] == "running"
    from ekimo.imports.jobs import IMPORT_RUN_LOCK

    await until_none(
        container,
        "SELECT count(*) FROM pg_locks "
        f"WHERE locktype = 'advisory' AND classid = {IMPORT_RUN_LOCK}",
        "the dead worker's lock is still held",
    )
    worker()
    failed = await poll(client, auth_headers, location, lambda b: b["status"] != "running")
    assert failed["status"] == "failed"
    assert "worker stopped during the import" in failed["errors"][0]["message"]
    assert failed["finished_at"] is not None
    async with container.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM import_upload_chunks")) == 0
    # The killed import's transaction is rolled back by PostgreSQL: nothing was written.
    await until_none(
        container,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state <> 'idle' AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' AND query ILIKE '%products%'",
        "the killed import's statement is still running",
    )
    page = (await client.get("/products", params={"limit": 1}, headers=auth_headers)).json()
    assert page["total"] == 0


async def test_a_running_import_whose_job_is_alive_is_not_touched(
    container: Container, client: Client, auth_headers: dict[str, str]
) -> None:
    from ekimo.imports.jobs import IMPORT_RUN_LOCK, fail_orphaned_imports

    async with container.engine.connect() as conn:
        import_id = await conn.scalar(
            text(
                "INSERT INTO imports (filename, format, sha256, dry_run, on_error, status, rows, "
                "created, updated, unchanged, rejected, errors, errors_total, errors_truncated, "
                "warnings, started_at, finished_at, duration_ms, created_at, updated_at) VALUES "
                "('alive.csv', 'csv', '', false, 'reject', 'running', 0, 0, 0, 0, 0, '[]', 0, "
                "false, '[]', now(), now(), 0, now(), now()) RETURNING id"
            )
        )
        await conn.commit()
        # This connection stands for the job: it holds the import's lock.
        await conn.execute(
            text("SELECT pg_advisory_lock(:ns, :id)"), {"ns": IMPORT_RUN_LOCK, "id": import_id}
        )
        assert await fail_orphaned_imports(container) == []
        await conn.execute(
            text("SELECT pg_advisory_unlock(:ns, :id)"), {"ns": IMPORT_RUN_LOCK, "id": import_id}
        )
        assert await fail_orphaned_imports(container) == [import_id]
    body = (await client.get(f"/imports/{import_id}", headers=auth_headers)).json()
    assert body["status"] == "failed"
