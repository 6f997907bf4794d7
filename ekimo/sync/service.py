"""A sync run: push every pending product (a row in `pending_products`) to the external API.

One run at a time across all processes and machines (a session-level advisory lock on a
dedicated connection). Pending products go out by keyset in batches of SYNC_BATCH_SIZE, a few
in flight at once; each acknowledged batch marks exactly the versions it carried, so a run
killed midway loses nothing and a product changed in flight stays pending.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ekimo.container import Container
from ekimo.db import is_unavailable
from ekimo.products import writes
from ekimo.settings import Settings
from ekimo.sync import journal
from ekimo.sync.client import Delivered, RetryPolicy, SyncAborted, SyncClient, Undelivered
from ekimo.sync.errors import DatabaseUnavailable
from ekimo.sync.journal import RunSummary

logger = logging.getLogger(__name__)

# pg_try_advisory_lock key of "a sync run is going on" (distinct from PRODUCTS_WRITE_LOCK).
SYNC_RUN_LOCK = 0x656B696D6F02

# SQL: advisory locks have no ORM form; session-level, so they outlive the run's transactions.
TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
UNLOCK = text("SELECT pg_advisory_unlock(:key)")
# How long a run cut by an outage tries to record its end, and how often.
FINISH_PATIENCE_S = 10.0
FINISH_RETRY_S = 0.5
# Batches in flight at once: the receiver works on one while the next is read and sent.
DEFAULT_CONCURRENCY = 2

# SQL: the batch statements' own predicate: pending, minus products rejected at their version.
_NOT_REJECTED = """NOT EXISTS (
        SELECT 1 FROM sync_rejections r WHERE r.barcode = s.barcode AND r.version = s.version)"""
COUNT_PENDING = text(
    f"SELECT count(*) FROM pending_products s WHERE {_NOT_REJECTED}"  # noqa: S608 (a constant)
)

# GET /sync/status counts pending products up to this many; above, it gives the planner's
# estimate.
EXACT_PENDING_LIMIT = 10_000
# SQL: COUNT_PENDING, reading at most :limit products.
COUNT_PENDING_UP_TO = text(
    f"""
    SELECT count(*) FROM (
        SELECT 1 FROM pending_products s WHERE {_NOT_REJECTED} LIMIT :limit) pending
    """  # noqa: S608 (our own constant)
)
# SQL: the planner's estimate of the pending products (the table's statistics).
ESTIMATE_PENDING = text("EXPLAIN (FORMAT JSON) SELECT 1 FROM pending_products")

# The pending products after the keyset cursor, rejected ones left out (skipped until they
# change). Without any rejection on record, the anti-join is left out: it costs an index probe
# per product, and only this run (behind its own cursor) could add a rejection meanwhile.
_PENDING_AFTER = """
    SELECT p.id, p.barcode, p.name, p.price, p.quantity, p.last_updated, s.version
    FROM pending_products s JOIN products p ON p.id = s.product_id
    -- Both sides bounded: a merge join would otherwise read products from the first.
    WHERE s.product_id > :after AND p.id > :after {rejections}
    ORDER BY s.product_id
    LIMIT :limit
"""

# SQL: PostgreSQL builds each batch whole, so no product passes through Python on its way out.
# One row per batch: the count, the keyset cursor, the ids and versions as array literals
# (passed back as is to mark the batch), the Idempotency-Key (sha256 of "barcode:version\n"
# lines) and the request body. Barcodes are digits only (a check constraint), so only names
# need JSON escaping; numeric::text is a plain decimal; times are UTC ISO 8601 with
# microseconds, whatever the DateStyle.
_NEXT_BATCH = """
    SELECT count(*), max(b.id),
           array_agg(b.id ORDER BY b.id)::text,
           array_agg(b.version ORDER BY b.id)::text,
           encode(sha256(convert_to(
               string_agg(b.barcode || ':' || b.version || E'\\n', '' ORDER BY b.id), 'UTF8'
           )), 'hex'),
           convert_to('{{"products":[' || string_agg(
               '{{"barcode":"' || b.barcode || '","name":' || to_json(b.name)
               || ',"price":"' || b.price || '","quantity":"' || b.quantity
               || '","last_updated":"'
               || to_char(b.last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               || '"}}', ',' ORDER BY b.id
           ) || ']}}', 'UTF8')
    FROM ({pending}) b
"""
NEXT_BATCH = text(
    _NEXT_BATCH.format(pending=_PENDING_AFTER.format(rejections="AND " + _NOT_REJECTED))
)
NEXT_BATCH_NO_REJECTIONS = text(_NEXT_BATCH.format(pending=_PENDING_AFTER.format(rejections="")))
# SQL: part of the batch building; picks one of the two statements above for the run.
ANY_REJECTION = text("SELECT EXISTS (SELECT 1 FROM sync_rejections)")

# SQL: an atomic upsert (ON CONFLICT), on a consumer's autocommit connection (no session).
RECORD_REJECTION = text(
    """
    INSERT INTO sync_rejections
        (barcode, version, status_code, response_excerpt, created_at, updated_at)
    VALUES (:barcode, :version, :status_code, :excerpt, now(), now())
    ON CONFLICT (barcode, version) DO UPDATE
    SET status_code = EXCLUDED.status_code, response_excerpt = EXCLUDED.response_excerpt,
        updated_at = now()
    """
)


STOPPED_MESSAGE = "stopped early: ekimo was shutting down; the next run sends the rest"


class _Envelope(msgspec.Struct):
    products: list[msgspec.Raw]


class _Barcode(msgspec.Struct):
    barcode: str


def idempotency_key(barcodes: Sequence[str], versions: Sequence[int]) -> str:
    """sha256 of the batch's "barcode:version" lines, as NEXT_BATCH computes it."""
    lines = "".join(f"{b}:{v}\n" for b, v in zip(barcodes, versions, strict=True))
    return hashlib.sha256(lines.encode()).hexdigest()


def _array_literal(values: Sequence[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def _parse_array_literal(literal: str) -> list[int]:
    inner = literal.strip("{}")
    return [int(v) for v in inner.split(",")] if inner else []


@dataclass
class Batch:
    """One request's worth of products, as NEXT_BATCH returns it."""

    count: int
    body: bytes
    key: str
    ids: str  # array literals, e.g. "{4,5,9}"
    versions: str

    def __len__(self) -> int:
        return self.count

    def _split(self) -> tuple[list[int], list[int], list[str], list[msgspec.Raw]]:
        items = msgspec.json.decode(self.body, type=_Envelope).products
        barcodes = [msgspec.json.decode(item, type=_Barcode).barcode for item in items]
        return _parse_array_literal(self.ids), _parse_array_literal(self.versions), barcodes, items

    def only(self) -> tuple[str, int]:
        """The (barcode, version) of a batch of one."""
        _, versions, barcodes, _ = self._split()
        return barcodes[0], versions[0]

    def halves(self) -> tuple[Batch, Batch]:
        """Rare (a rejected batch is split), so this decodes what the fast path never does."""
        ids, versions, barcodes, items = self._split()
        mid = len(items) // 2

        def part(sl: slice) -> Batch:
            return Batch(
                count=len(items[sl]),
                body=msgspec.json.encode(_Envelope(items[sl])),
                key=idempotency_key(barcodes[sl], versions[sl]),
                ids=_array_literal(ids[sl]),
                versions=_array_literal(versions[sl]),
            )

        return part(slice(None, mid)), part(slice(mid, None))


Progress = Callable[[RunSummary], None]


@dataclass(frozen=True)
class PendingCount:
    count: int
    exact: bool  # False: an estimate (more than EXACT_PENDING_LIMIT)


class SyncService:
    """Runs syncs for one container; `settings` and `policy` may be overridden (tests)."""

    def __init__(
        self,
        container: Container,
        *,
        settings: Settings | None = None,
        policy: RetryPolicy | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._container = container
        self._settings = settings or container.settings
        self._policy = policy or RetryPolicy()
        self._concurrency = max(1, concurrency)

    async def pending_count(self) -> PendingCount:
        """Products waiting for a sync (rejected ones left out): exact up to
        EXACT_PENDING_LIMIT, above it an estimate (never below what was counted)."""
        limit = EXACT_PENDING_LIMIT
        async with self._container.engine.connect() as conn:
            count = int(
                (await conn.execute(COUNT_PENDING_UP_TO, {"limit": limit + 1})).scalar_one()
            )
            if count <= limit:
                return PendingCount(count, exact=True)
            plan: Any = (await conn.execute(ESTIMATE_PENDING)).scalar_one()
        if isinstance(plan, str):
            plan = json.loads(plan)
        return PendingCount(max(count, round(plan[0]["Plan"]["Plan Rows"])), exact=False)

    async def run(self, trigger: str, on_progress: Progress | None = None) -> RunSummary:
        """One sync run; returns its summary (also stored in `sync_runs`). A database outage
        ends the run `failed` with the reason when the row can still be written; otherwise the
        next run closes it."""
        engine = self._container.engine
        started = time.monotonic()
        lock_conn = await engine.connect()
        try:
            got = (await lock_conn.execute(TRY_LOCK, {"key": SYNC_RUN_LOCK})).scalar_one()
            await lock_conn.commit()
            if not got:
                return await self._record_skipped(trigger, started)
            try:
                return await self._locked_run(trigger, started, on_progress)
            finally:
                await self._unlock(lock_conn)
        except BaseException:
            # Unlock may not have run (cancelled): closing the connection releases the lock.
            await lock_conn.invalidate()
            raise
        finally:
            await lock_conn.close()

    @staticmethod
    async def _unlock(lock_conn: AsyncConnection) -> None:
        try:
            await lock_conn.execute(UNLOCK, {"key": SYNC_RUN_LOCK})
            await lock_conn.commit()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # The server dropped the connection, and the session lock with it.
            await lock_conn.invalidate()

    async def _record_skipped(self, trigger: str, started: float) -> RunSummary:
        summary = RunSummary(
            id=0,
            status="skipped",
            trigger=trigger,
            started_at=datetime.now(UTC),
            error="already running: another sync run holds the lock",
        )
        self._stop_clock(summary, started)
        async with self._container.session() as session:
            summary.id = await journal.record(session, summary)
            await session.commit()
        return summary

    @staticmethod
    def _stop_clock(summary: RunSummary, started: float) -> None:
        summary.finished_at = datetime.now(UTC)
        summary.duration_ms = round((time.monotonic() - started) * 1000)

    async def _finish(self, summary: RunSummary, started: float) -> None:
        self._stop_clock(summary, started)
        async with self._container.session() as session:
            await journal.finish(session, summary)
            await session.commit()
        logger.info(
            "sync run %s %s: %d sent, %d acknowledged, %d failed, %d rejected",
            summary.id,
            summary.status,
            summary.sent,
            summary.acknowledged,
            summary.failed,
            summary.rejected,
            extra={
                "run_id": summary.id,
                "status": summary.status,
                "sent": summary.sent,
                "acknowledged": summary.acknowledged,
                "failed": summary.failed,
                "rejected": summary.rejected,
                "duration_ms": summary.duration_ms,
            },
        )

    async def _locked_run(
        self, trigger: str, started: float, on_progress: Progress | None
    ) -> RunSummary:
        summary = RunSummary(id=0, status="running", trigger=trigger, started_at=datetime.now(UTC))
        # Committed before the first batch: the run shows as `running` while it goes. Holding
        # the lock, any other `running` row is a run whose process died: it is closed first.
        async with self._container.session() as session:
            await journal.close_abandoned(session)
            summary.id = await journal.record(session, summary)
            summary.pending_at_start = int((await session.execute(COUNT_PENDING)).scalar_one())
            await session.commit()
        client = SyncClient(self._container.http, self._settings, self._policy)
        try:
            if summary.pending_at_start > 0:
                await self._deliver_all(client, summary, on_progress)
        except asyncio.CancelledError:
            summary.status = "failed"
            summary.error = "interrupted: the run was cancelled; the next run sends the rest"
            summary.retries = client.retries
            await asyncio.shield(self._finish(summary, started))
            raise
        except SyncAborted as exc:
            summary.status = "failed"
            summary.error = str(exc)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            summary.status = "failed"
            summary.error = (
                "the database became unavailable during the run; what was acknowledged is "
                "marked, the next run sends the rest"
            )
            summary.retries = client.retries
            await self._finish_when_possible(summary, started)
            raise DatabaseUnavailable(summary.error) from exc
        summary.retries = client.retries
        if summary.status == "running":
            summary.status, summary.error = self._verdict(summary)
        elif summary.error == STOPPED_MESSAGE and summary.acknowledged:
            summary.status = "partial"
        await self._finish(summary, started)
        return summary

    async def _finish_when_possible(self, summary: RunSummary, started: float) -> None:
        """Record the end of a run cut by an outage, trying for a short while; if the database
        stays away, the row stays `running` until the next run closes it."""
        deadline = time.monotonic() + FINISH_PATIENCE_S
        while True:
            try:
                await self._finish(summary, started)
                return
            except Exception as exc:
                if not is_unavailable(exc) or time.monotonic() >= deadline:
                    return
                await asyncio.sleep(FINISH_RETRY_S)

    @staticmethod
    def _verdict(summary: RunSummary) -> tuple[str, str | None]:
        if summary.failed == 0 and summary.rejected == 0:
            return "succeeded", None
        problems: list[str] = []
        if summary.failed:
            problems.append(
                f"{summary.failed} products not delivered ({summary.last_failure}); "
                "they stay pending for the next run"
            )
        if summary.rejected:
            problems.append(
                f"{summary.rejected} products rejected by the external API "
                "(see sync_rejections); skipped until they change"
            )
        return ("partial" if summary.acknowledged else "failed"), "; ".join(problems)

    async def _batches(self) -> AsyncIterator[Batch]:
        after = 0
        limit = self._settings.sync_batch_size
        # One connection for the whole stream, one statement (and round trip) per batch.
        async with self._container.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            any_rejection = bool((await conn.execute(ANY_REJECTION)).scalar_one())
            statement = NEXT_BATCH if any_rejection else NEXT_BATCH_NO_REJECTIONS
            while True:
                row = (await conn.execute(statement, {"after": after, "limit": limit})).one()
                count, last_id, ids, versions, key, body = row
                if not count:
                    return
                after = int(last_id)
                yield Batch(count=int(count), body=bytes(body), key=key, ids=ids, versions=versions)
                if count < limit:
                    return

    async def _deliver_all(
        self, client: SyncClient, summary: RunSummary, on_progress: Progress | None
    ) -> None:
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=self._concurrency)

        async def produce() -> None:
            async for batch in self._batches():
                if self._container.shutdown.begun:
                    # The batches in flight finish and are marked; the rest waits for a run.
                    summary.status = "failed"
                    summary.error = STOPPED_MESSAGE
                    break
                await queue.put(batch)
            for _ in range(self._concurrency):
                await queue.put(None)

        async def consume() -> None:
            async with self._container.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                while (batch := await queue.get()) is not None:
                    summary.sent += len(batch)
                    try:
                        await self._deliver(client, conn, batch, summary)
                    except SyncAborted:
                        summary.failed += len(batch)  # not delivered: it stays pending
                        raise
                    summary.retries = client.retries
                    if on_progress is not None:
                        on_progress(summary)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                for _ in range(self._concurrency):
                    group.create_task(consume())
        except* SyncAborted as aborted:
            raise aborted.exceptions[0] from None

    async def _deliver(
        self, client: SyncClient, conn: AsyncConnection, batch: Batch, summary: RunSummary
    ) -> None:
        outcome = await client.send(batch.body, batch.key)
        if isinstance(outcome, Delivered):
            # One statement in autocommit: acknowledged batches stay marked if the run dies.
            await writes.mark_synced(conn, batch.ids, batch.versions)
            summary.acknowledged += len(batch)
        elif isinstance(outcome, Undelivered):
            summary.failed += len(batch)
            summary.last_failure = outcome.error
        else:
            if len(batch) == 1:
                barcode, version = batch.only()
                await conn.execute(
                    RECORD_REJECTION,
                    {
                        "barcode": barcode,
                        "version": version,
                        "status_code": outcome.status_code,
                        "excerpt": outcome.excerpt,
                    },
                )
                summary.rejected += 1
            else:
                for half in batch.halves():
                    await self._deliver(client, conn, half, summary)
