"""Asynchronous imports: the file waits in PostgreSQL, a SAQ job imports it.

`queue_import` (PUT /products?async=true, `ekimo import --async`) records the import as
`queued`, stores the file in `import_upload_chunks` and enqueues `import_products_file`; the job
marks it `running`, reports the rows read so far in `import_uploads.rows_done`, and the import
service completes the same `imports` row with its report.

While a job imports, its connection holds a session advisory lock on the import's id. A worker
that dies mid-import loses its connection and with it the lock: `fail_orphaned_imports` (at
worker start and every minute) marks such a `running` import `failed` instead of leaving
it running for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import IO, Any

from saq import CronJob
from saq.types import Context, Function

from ekimo import request_ids
from ekimo.container import Container
from ekimo.db import is_unavailable
from ekimo.imports import history
from ekimo.imports.errors import NOT_QUEUED_MESSAGE, FileProblem, ImportFailed, ImportNotQueued
from ekimo.imports.readers import file_format
from ekimo.imports.schemas import ImportOptions
from ekimo.imports.service import ImportService
from ekimo.job_worker import container_of, worker_stopping
from ekimo.settings import Settings

logger = logging.getLogger(__name__)

IMPORT_JOB_TIMEOUT = 6 * 3600
# pg_advisory_lock(IMPORT_RUN_LOCK, import id) is held by the job importing that file.
IMPORT_RUN_LOCK = 0x656B69
ORPHAN_MESSAGE = "the worker stopped during the import, nothing was written; upload the file again"
PROGRESS_EVERY_S = 0.5

QUEUE_ROW = """
INSERT INTO imports (user_id, filename, format, sha256, dry_run, on_error, status, rows,
    created, updated, unchanged, rejected, errors, errors_total, errors_truncated, warnings,
    started_at, finished_at, duration_ms, created_at, updated_at, username, request_id)
VALUES ($1, $2, $3, '', $4, $5, 'queued', 0, 0, 0, 0, 0, '[]'::jsonb, 0, false, '[]'::jsonb,
    now(), now(), 0, now(), now(), $6, $7)
RETURNING id
"""

ORPHANED = """
SELECT id FROM imports i
WHERE status = 'running' AND NOT EXISTS (
    SELECT FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = i.id
        AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
"""

# A job cut by its worker's stop: SAQ queues it again, and the import waits for it as it was.
REQUEUE_ROW = """
UPDATE imports SET status = 'queued', updated_at = now() WHERE id = $1 AND status = 'running'
"""
CANCELLED_MESSAGE = "the import was cancelled before it finished, nothing was written"
OUTAGE_MESSAGE = (
    "the database became unavailable during the import, nothing was written; upload the file again"
)
SETTLE_PATIENCE_S = 10.0
SETTLE_RETRY_S = 0.5

FAIL_ROW = """
UPDATE imports SET status = $2, errors = $3::jsonb, errors_total = 1, finished_at = now(),
    updated_at = now(), duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint
WHERE id = $1 AND status IN ('queued', 'running')
"""


async def queue_import(
    container: Container,
    stream: IO[bytes],
    filename: str,
    options: ImportOptions,
    user_id: int | None = None,
    username: str | None = None,
) -> int:
    """Store the file and enqueue its import; returns the import id. `FileProblem` (400) when
    the file name is not .csv or .xlsx."""
    fmt = file_format(filename)
    async with container.engine.connect() as sa_conn:
        raw = await sa_conn.get_raw_connection()
        conn: Any = raw.driver_connection
        async with conn.transaction():
            import_id: int = await conn.fetchval(
                QUEUE_ROW,
                user_id,
                filename[:255],
                fmt,
                options.dry_run,
                options.on_error,
                username,
                request_ids.current(),
            )
            await history.store_upload(conn, import_id, stream)
        try:
            # No fixed job key: SAQ refuses (returns None for) a key it still holds, and import
            # ids are reused after a database reset while the queue keeps its jobs. The
            # advisory lock and the `queued` status already keep a file from running twice.
            job = await container.queue.enqueue(
                import_products_file.__qualname__,
                import_id=import_id,
                timeout=IMPORT_JOB_TIMEOUT,
                retries=1,
                meta=request_ids.job_meta(),
            )
        except Exception as exc:
            await _fail(conn, import_id, "failed", NOT_QUEUED_MESSAGE)
            raise ImportNotQueued(import_id) from exc
        if job is None:
            await _fail(conn, import_id, "failed", NOT_QUEUED_MESSAGE)
            raise ImportNotQueued(import_id)
    return import_id


async def _fail(conn: Any, import_id: int, status: str, message: str) -> None:
    error = [{"row": None, "column": None, "value": None, "message": message}]
    await conn.execute(FAIL_ROW, import_id, status, json.dumps(error))


async def import_products_file(ctx: Context, *, import_id: int) -> dict[str, Any]:
    """Import a queued file; the outcome is the `imports` row (GET /imports/{id})."""
    container = container_of(ctx)
    async with container.engine.connect() as sa_conn:
        raw = await sa_conn.get_raw_connection()
        conn: Any = raw.driver_connection
        if not await conn.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", IMPORT_RUN_LOCK, import_id
        ):
            logger.warning("import %s is being imported by another worker", import_id)
            return {"import_id": import_id, "status": "skipped"}
        try:
            return await _import_queued(container, conn, import_id, lambda: worker_stopping(ctx))
        finally:
            if not conn.is_closed():  # else the lock went with the connection
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", IMPORT_RUN_LOCK, import_id)


async def _import_queued(
    container: Container, conn: Any, import_id: int, stopping: Callable[[], bool]
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "UPDATE imports SET status = 'running', started_at = now(), updated_at = now() "
        "WHERE id = $1 AND status = 'queued' "
        "RETURNING filename, dry_run, on_error, user_id, username",
        import_id,
    )
    if row is None:
        logger.warning("import %s is not queued (any more); nothing to do", import_id)
        return {"import_id": import_id, "status": "skipped"}
    options = ImportOptions(dry_run=row["dry_run"], on_error=row["on_error"])
    source = await history.load_upload(conn, import_id)
    done = [0]
    progress_task = asyncio.create_task(_report_progress(container, import_id, done))
    # What happened, recorded after the run on a connection of its own: the job's own
    # connection may be the one an outage dropped.
    outcome: tuple[str, str] | None = None
    try:
        report = await ImportService(container).run(
            source,
            row["filename"],
            options,
            user_id=row["user_id"],
            username=row["username"],
            progress=lambda rows: done.__setitem__(0, rows),
            import_id=import_id,
        )
        status = report.status
    except (ImportFailed, FileProblem) as exc:
        outcome = ("rejected", exc.message)
        status = "rejected"
    except asyncio.CancelledError:
        # Its own transaction has rolled back; the stored file stays for the next attempt.
        outcome = ("queued", "") if stopping() else ("failed", CANCELLED_MESSAGE)
        raise
    except Exception as exc:
        if not is_unavailable(exc):
            outcome = ("failed", f"the import failed: {type(exc).__name__}")
            raise
        # An outage is no bug of the job's: the import ends failed with the reason (its
        # transaction rolled back), and the worker's log gets a line, not a traceback.
        logger.warning("import %s failed: the database became unavailable", import_id)
        outcome = ("failed", OUTAGE_MESSAGE)
        status = "failed"
    except BaseException as exc:
        outcome = ("failed", f"the import failed: {type(exc).__name__}")
        raise
    finally:
        progress_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress_task
        source.close()
        await _settle(container, import_id, outcome, done[0])
    return {"import_id": import_id, "status": status}


async def _settle(
    container: Container, import_id: int, outcome: tuple[str, str] | None, rows_done: int
) -> None:
    """Record the end of a job's run: the failure or the return to the queue, the rows done;
    the stored file is dropped unless the import waits to run again. Tried for a few seconds
    through an outage; if the database stays away, the sweep fails the import later."""
    requeued = outcome is not None and outcome[0] == "queued"
    deadline = time.monotonic() + SETTLE_PATIENCE_S
    while True:
        try:
            async with container.engine.connect() as sa_conn:
                raw = await sa_conn.get_raw_connection()
                conn: Any = raw.driver_connection
                async with conn.transaction():
                    if requeued:
                        await conn.execute(REQUEUE_ROW, import_id)
                    elif outcome is not None:
                        await _fail(conn, import_id, *outcome)
                    await conn.execute(
                        "UPDATE import_uploads SET rows_done = $2 WHERE import_id = $1",
                        import_id,
                        0 if requeued else rows_done,
                    )
                    if not requeued:
                        await conn.execute(
                            "DELETE FROM import_upload_chunks WHERE import_id = $1", import_id
                        )
            if requeued:
                logger.info("import %s: the worker is stopping; queued again", import_id)
            return
        except Exception as exc:
            if not is_unavailable(exc) or time.monotonic() >= deadline:
                logger.warning("import %s: could not record its end: %r", import_id, exc)
                return
            await asyncio.sleep(SETTLE_RETRY_S)


async def _report_progress(container: Container, import_id: int, done: list[int]) -> None:
    """Write the rows read so far every PROGRESS_EVERY_S (its own short transactions)."""
    written = 0
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        if done[0] != written:
            written = done[0]
            try:
                async with container.engine.begin() as conn:
                    await conn.execute(
                        history.import_uploads.update()
                        .where(history.import_uploads.c.import_id == import_id)
                        .values(rows_done=written)
                    )
            except Exception as exc:  # progress only: the import's own outcome says the rest
                logger.warning("import %s: could not record progress: %r", import_id, exc)


async def fail_orphaned_imports(container: Container) -> list[int]:
    """Mark `failed` every running import whose job holds no lock (its worker died); their ids."""
    async with container.engine.connect() as sa_conn:
        raw = await sa_conn.get_raw_connection()
        conn: Any = raw.driver_connection
        orphans: list[int] = [r["id"] for r in await conn.fetch(ORPHANED, IMPORT_RUN_LOCK)]
        for import_id in orphans:
            await _fail(conn, import_id, "failed", ORPHAN_MESSAGE)
            await conn.execute("DELETE FROM import_upload_chunks WHERE import_id = $1", import_id)
            logger.warning(
                "import %s: its worker stopped during the import; marked failed", import_id
            )
    return orphans


async def sweep_orphaned_imports(ctx: Context) -> dict[str, Any]:
    container = container_of(ctx)
    return {"failed": await fail_orphaned_imports(container)}


functions: list[Function[Any]] = [import_products_file, sweep_orphaned_imports]


def cron_jobs(settings: Settings) -> list[CronJob[Any]]:
    # Every minute: it reads only the running imports, and a dead worker's import is failed
    # soon after (a replacement worker's start-up sweep may run before the dead session ends).
    return [CronJob(sweep_orphaned_imports, cron="* * * * *", unique=True, timeout=60)]
