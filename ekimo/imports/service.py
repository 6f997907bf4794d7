"""The import service: a CSV/XLSX file in, validated rows bulk-upserted into `products`.

    report = await ImportService(container).run(stream, "products.csv", ImportOptions())

The file is streamed: a worker thread reads and validates rows in batches and turns the valid
ones into CSV text, which is COPYed (PostgreSQL parses the numbers) into a temporary staging
table while the thread prepares the next batch. Duplicate barcodes are found in SQL on the
staging table. Then, under `PRODUCTS_WRITE_LOCK`, one MERGE inserts new products, updates
changed ones (version + 1) and leaves identical ones alone. All of it is one transaction; every
import, applied or not, is recorded in `imports`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import IO, Any

import asyncpg  # pyright: ignore[reportMissingTypeStubs]

from ekimo import request_ids
from ekimo.container import Container
from ekimo.imports.errors import FileProblem, ImportFailed
from ekimo.imports.fast import csv as fast_csv
from ekimo.imports.fast import outcome as fast_paths
from ekimo.imports.fast import xlsx as fast_xlsx
from ekimo.imports.header import map_header
from ekimo.imports.readers import CsvSource, XlsxSource, file_format
from ekimo.imports.rejected import RejectedRows
from ekimo.imports.schemas import Format, ImportOptions, ImportReport, Status
from ekimo.imports.validation import (
    MAX_ERRORS_KEPT,
    ErrorLog,
    RowValidator,
)
from ekimo.products.writes import (
    count_changes,
    lock_for_import,
    merge_into_products,
    write_counted,
)

Progress = Callable[[int], None]

BATCH_ROWS = 8192
# asyncpg ships no type information for its connection methods.
Connection = Any

STAGING_DDL = """
CREATE TEMP TABLE import_staging (
    row_no integer NOT NULL,
    barcode text NOT NULL,
    name text NOT NULL,
    price numeric NOT NULL,
    quantity numeric NOT NULL,
    last_updated timestamptz
) ON COMMIT DROP
"""

DUPLICATES = """
SELECT barcode, min(row_no) AS first_row
FROM import_staging GROUP BY barcode HAVING count(*) > 1
"""

MERGE = merge_into_products("import_staging")

logger = logging.getLogger(__name__)

RECORD = """
INSERT INTO imports (user_id, filename, format, sha256, dry_run, on_error, status, rows,
    created, updated, unchanged, rejected, errors, errors_total, errors_truncated, warnings,
    started_at, finished_at, duration_ms, created_at, updated_at, username, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15, $16::jsonb,
    $17, $18, $19, $18, $18, $20, $21)
RETURNING id
"""

# A queued import (PUT /products?async=true) already has its row: the worker fills it in.
RECORD_QUEUED = """
UPDATE imports SET user_id = $1, filename = $2, format = $3, sha256 = $4, dry_run = $5,
    on_error = $6, status = $7, rows = $8, created = $9, updated = $10, unchanged = $11,
    rejected = $12, errors = $13::jsonb, errors_total = $14, errors_truncated = $15,
    warnings = $16::jsonb, started_at = $17, finished_at = $18, duration_ms = $19,
    updated_at = $18, username = $20, request_id = coalesce(request_id, $21)
WHERE id = $22
RETURNING id
"""


class _Parsed:
    """Reading and validation state, driven batch by batch from a worker thread."""

    def __init__(
        self, fmt: Format, stream: IO[bytes], max_bytes: int, rejected: RejectedRows
    ) -> None:
        self.errors = ErrorLog()
        self.rejected = rejected
        self.warnings: list[str] = []
        self.rows = 0
        self.sha256 = ""
        self.source: CsvSource | XlsxSource
        if fmt == "csv":
            self.source = CsvSource(stream)
            header = self.source.header()
            header_row = 1
        else:
            self.source = XlsxSource(stream, max_bytes)
            self.sha256 = self.source.sha256
            header = self.source.header()
            header_row = self.source.first_row
        if header is None:
            raise FileProblem(422, "the file is empty: the first row must be the header")
        positions, self.warnings = map_header(header)
        rejected.set_header(header, positions)
        decimal_comma = isinstance(self.source, CsvSource) and self.source.delimiter == ";"
        self.validator = RowValidator(
            positions, self.errors, decimal_comma=decimal_comma, on_reject=rejected.add
        )
        self._first_data_row = header_row + 1

    def batches(self) -> Iterator[bytes]:
        validator = self.validator
        row_no = self._first_data_row
        for batch in self.source.batches(BATCH_ROWS):
            text = validator.batch(row_no, batch)
            row_no += len(batch)
            if text:
                yield text.encode()
        if isinstance(self.source, CsvSource):
            self.sha256 = self.source.sha256
        self.rows = validator.valid + self.errors.rows

    @property
    def processed(self) -> int:
        return self.validator.valid + self.errors.rows


async def _try_merge(conn: Connection, staged: int, dry_run: bool) -> tuple[int, int] | None:
    """(created, updated), or None when the staging table holds a barcode twice. A dry run
    counts them without writing or taking the write lock."""
    if dry_run:
        return await count_changes(conn, "import_staging")
    await lock_for_import(conn)
    try:
        async with conn.transaction():
            now: datetime = await conn.fetchval("SELECT clock_timestamp()")
            return await write_counted(conn, MERGE, now, "import_staging", staged)
    except (asyncpg.CardinalityViolationError, asyncpg.UniqueViolationError):
        return None


class ImportService:
    """Imports product files into the catalog. One instance per container is fine."""

    def __init__(self, container: Container) -> None:
        self.container = container

    async def run(
        self,
        source: IO[bytes],
        filename: str,
        options: ImportOptions | None = None,
        user_id: int | None = None,
        progress: Progress | None = None,
        import_id: int | None = None,
        username: str | None = None,
    ) -> ImportReport:
        """Validate and apply `source`; raises `FileProblem` (400) or `ImportFailed`.

        `import_id`: the `imports` row of a queued import, completed instead of a new one.
        The rejected rows are kept for `GET /imports/{id}/errors.csv`.
        """
        options = options or ImportOptions()
        rejected = RejectedRows()
        fmt = file_format(filename)
        started = datetime.now().astimezone()
        clock = time.perf_counter()
        async with self.container.connection() as conn:
            try:
                # A clean file takes a fast path; else (or if it steps aside) the Python path.
                if fmt == "csv":
                    fast = await fast_csv.attempt(
                        conn, self._helper, source, dry_run=options.dry_run, progress=progress
                    )
                else:
                    fast = await fast_xlsx.attempt(
                        conn,
                        source,
                        self.container.settings.max_upload_bytes,
                        dry_run=options.dry_run,
                        progress=progress,
                    )
                if fast is not None:
                    rejected.set_header(fast.header, fast.positions)
                    return await self._finish_fast(
                        conn,
                        fast,
                        filename,
                        fmt,
                        options,
                        user_id,
                        started,
                        clock,
                        import_id,
                        rejected,
                        username=username,
                    )
                report = await self._run(
                    conn,
                    source,
                    filename,
                    fmt,
                    options,
                    user_id,
                    progress,
                    started,
                    clock,
                    import_id,
                    rejected,
                    username=username,
                )
                return report
            except FileProblem as problem:
                report = _report(filename, fmt, options, "rejected", clock)
                report.errors = [
                    {"row": None, "column": None, "value": None, "message": problem.message}
                ]
                report.errors_total = 1
                if problem.status == 422:
                    report.import_id = await self._record(
                        conn,
                        report,
                        "",
                        options,
                        user_id,
                        started,
                        rejected,
                        import_id,
                        username=username,
                    )
                raise ImportFailed(problem, report) from None
            finally:
                rejected.close()

    def _helper(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A second connection, for the fast path's checking (see `fast.csv`); a failed fast
        path may leave it mid-statement: closed, never back in the pool."""
        return self.container.connection(discard_on_error=True)

    async def _run(
        self,
        conn: Connection,
        source: IO[bytes],
        filename: str,
        fmt: Format,
        options: ImportOptions,
        user_id: int | None,
        progress: Progress | None,
        started: datetime,
        clock: float,
        import_id: int | None,
        rejected: RejectedRows,
        *,
        username: str | None = None,
    ) -> ImportReport:
        max_bytes = self.container.settings.max_upload_bytes
        parsed = await asyncio.to_thread(_Parsed, fmt, source, max_bytes, rejected)
        report = _report(filename, fmt, options, "rejected", clock)
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(STAGING_DDL)
            copied: str = await conn.copy_to_table(
                "import_staging",
                source=_chunks(parsed, progress),
                format="csv",
                columns=["row_no", "barcode", "name", "price", "quantity", "last_updated"],
            )
            staged = int(copied.rsplit(" ", 1)[-1])
            errors = parsed.errors
            merged: tuple[int, int] | None = None
            if not errors.total or options.on_error == "skip":
                # Optimistic: MERGE refuses a file with a barcode twice, and only then do we
                # spend a GROUP BY on finding the duplicates. The file is staged: only now the
                # write lock.
                merged = await _try_merge(conn, staged, options.dry_run)
            if merged is None:
                await self._duplicates(conn, parsed, options)
                if options.on_error == "skip":
                    merged = await _try_merge(conn, staged, options.dry_run)
            report.rows = parsed.rows
            report.rejected = errors.rows
            report.warnings = parsed.warnings
            report.errors = sorted(errors.kept, key=lambda e: e["row"] or 0)[:MAX_ERRORS_KEPT]
            report.errors_total = errors.total
            report.errors_truncated = errors.total > len(report.errors)
            if merged is None:
                await transaction.rollback()
            else:
                report.created, report.updated = merged
                report.unchanged = parsed.rows - report.rejected - sum(merged)
                if options.dry_run:
                    report.status = "validated"
                    await transaction.rollback()
                else:
                    report.status = "applied"
                    report.duration_ms = _elapsed(clock)
                    report.import_id = await self._record(
                        conn,
                        report,
                        parsed.sha256,
                        options,
                        user_id,
                        started,
                        rejected,
                        import_id,
                        username=username,
                    )
                    await transaction.commit()
                    return report
        except BaseException:
            if not conn.is_closed():
                await transaction.rollback()
            raise
        report.duration_ms = _elapsed(clock)
        report.import_id = await self._record(
            conn,
            report,
            parsed.sha256,
            options,
            user_id,
            started,
            rejected,
            import_id,
            username=username,
        )
        return report

    async def _finish_fast(
        self,
        conn: Connection,
        fast: fast_paths.FastOutcome,
        filename: str,
        fmt: Format,
        options: ImportOptions,
        user_id: int | None,
        started: datetime,
        clock: float,
        import_id: int | None,
        rejected: RejectedRows,
        *,
        username: str | None = None,
    ) -> ImportReport:
        """Report and record an import done by the fast path (see `fast.csv`)."""
        status: Status = "validated" if options.dry_run else "applied"
        report = _report(filename, fmt, options, status, clock)
        report.rows, report.created, report.updated = fast.rows, fast.created, fast.updated
        report.unchanged = fast.rows - fast.created - fast.updated
        report.warnings = fast.warnings
        report.duration_ms = _elapsed(clock)
        try:
            report.import_id = await self._record(
                conn,
                report,
                fast.sha256,
                options,
                user_id,
                started,
                rejected,
                import_id,
                username=username,
            )
            if fast.transaction is not None:
                await fast.transaction.commit()
        except BaseException:
            if fast.transaction is not None and not conn.is_closed():
                await fast.transaction.rollback()
            raise
        return report

    async def _duplicates(self, conn: Connection, parsed: _Parsed, options: ImportOptions) -> None:
        """Report (and, when skipping, drop) every later row of a barcode seen before."""
        found = await conn.fetch(
            "SELECT s.row_no, s.barcode, d.first_row, s.name, s.price::text AS price, "  # noqa: S608
            "s.quantity::text AS quantity, s.last_updated FROM import_staging s "
            f"JOIN ({DUPLICATES}) d USING (barcode) WHERE s.row_no > d.first_row "
            f"ORDER BY s.row_no LIMIT {MAX_ERRORS_KEPT + 1}"
        )
        if not found:
            return
        total: int = await conn.fetchval(
            f"SELECT count(*) FROM import_staging s JOIN ({DUPLICATES}) d "  # noqa: S608
            "USING (barcode) WHERE s.row_no > d.first_row"
        )
        errors = parsed.errors
        for record in found[:MAX_ERRORS_KEPT]:
            message = f"barcode {record['barcode']} already appears on row {record['first_row']}"
            errors.add(record["row_no"], "barcode", record["barcode"], message)
            moment = record["last_updated"]
            parsed.rejected.add_values(
                record["row_no"],
                {
                    "barcode": record["barcode"],
                    "name": record["name"],
                    "price": record["price"],
                    "quantity": record["quantity"],
                    "last_updated": moment.isoformat() if moment is not None else "",
                },
                message,
            )
        # The rest are counted without being kept.
        extra = total - min(len(found), MAX_ERRORS_KEPT)
        errors.total += extra
        errors.rows += extra
        if options.on_error == "skip":
            await conn.execute(
                f"DELETE FROM import_staging s USING ({DUPLICATES}) d "  # noqa: S608
                "WHERE s.barcode = d.barcode AND s.row_no > d.first_row"
            )

    async def _record(
        self,
        conn: Connection,
        report: ImportReport,
        sha256: str,
        options: ImportOptions,
        user_id: int | None,
        started: datetime,
        rejected: RejectedRows,
        queued_id: int | None = None,
        *,
        username: str | None = None,
    ) -> int:
        """Write the `imports` row and the rejected rows together: once an import shows as
        finished, its errors.csv is complete."""
        finished = datetime.now().astimezone()
        queued = () if queued_id is None else (queued_id,)
        async with conn.transaction():
            import_id: int = await conn.fetchval(
                RECORD_QUEUED if queued else RECORD,
                user_id,
                report.filename[:255],
                report.format,
                sha256,
                report.dry_run,
                options.on_error,
                report.status,
                report.rows,
                report.created,
                report.updated,
                report.unchanged,
                report.rejected,
                json.dumps(report.errors),
                report.errors_total,
                report.errors_truncated,
                json.dumps(report.warnings),
                started,
                finished,
                report.duration_ms,
                username,
                request_ids.current(),
                *queued,
            )
            await rejected.save(conn, import_id)
        # The counts go as the event's fields (LOG_FORMAT=json); the text line names the outcome.
        logger.info(
            "import %s of %s: %s",
            import_id,
            report.filename,
            report.status,
            extra={
                "import_id": import_id,
                "file": report.filename,
                "status": report.status,
                "rows": report.rows,
                "rows_created": report.created,
                "rows_updated": report.updated,
                "rows_unchanged": report.unchanged,
                "rows_rejected": report.rejected,
                "duration_ms": report.duration_ms,
            },
        )
        return import_id


def _report(
    filename: str, fmt: Format, options: ImportOptions, status: Status, clock: float
) -> ImportReport:
    return ImportReport(
        import_id=None,
        filename=filename,
        format=fmt,
        dry_run=options.dry_run,
        status=status,
        rows=0,
        created=0,
        updated=0,
        unchanged=0,
        rejected=0,
        errors=[],
        errors_total=0,
        errors_truncated=False,
        warnings=[],
        duration_ms=_elapsed(clock),
    )


def _elapsed(clock: float) -> int:
    return round((time.perf_counter() - clock) * 1000)


async def _chunks(parsed: _Parsed, progress: Progress | None) -> AsyncIterator[bytes]:
    """Batches of COPY data, prepared in a thread while PostgreSQL takes the previous one."""
    batches = parsed.batches()
    sentinel = b""
    while True:
        chunk = await asyncio.to_thread(next, batches, sentinel)
        if progress is not None:
            progress(parsed.processed)
        if chunk is sentinel:
            return
        yield chunk
