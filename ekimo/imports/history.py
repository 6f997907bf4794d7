"""What an import leaves behind besides its report: the rejected rows as they were in the file
(for `errors.csv`), the uploaded file of a queued import, and the history read back."""

from __future__ import annotations

import codecs
import csv
import io
import tempfile
from collections.abc import AsyncGenerator
from typing import IO, Any

from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import OffsetPagination, SQLAlchemyAsyncRepositoryService
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ekimo.imports.errors import ImportNotFinished, ImportNotFound
from ekimo.imports.header import ERRORS_CSV_COLUMN
from ekimo.imports.models import Import, import_rejected_rows, import_uploads
from ekimo.imports.rejected import HEADER_ROW, SPOOL_BYTES
from ekimo.imports.schemas import ImportOut, ImportSummary, describe

# A queued import's file is stored in pieces of this size.
CHUNK_BYTES = 1024 * 1024


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


async def errors_csv(engine: AsyncEngine, import_id: int) -> AsyncGenerator[bytes]:
    """The file's header plus `error`, then each rejected row as it was, with its errors."""
    async with engine.connect() as connection:
        result = await connection.stream(
            import_rejected_rows.select()
            .where(import_rejected_rows.c.import_id == import_id)
            .order_by(import_rejected_rows.c.row_no)
            .execution_options(yield_per=1000)
        )
        width = 0
        first = True
        async for batch in result.partitions(1000):
            out: list[str] = []
            for row in batch:
                cells: list[str] = [str(c) for c in row.cells]
                if row.row_no == HEADER_ROW:
                    width = len(cells)
                    out.append(_csv_line([*cells, ERRORS_CSV_COLUMN]))
                    continue
                # Padded to the header's width; the error column follows the file's columns.
                padded = cells + [""] * (width - len(cells))
                out.append(_csv_line([*padded[:width], row.error or "", *padded[width:]]))
            chunk = "".join(out).encode()
            if first:
                chunk = codecs.BOM_UTF8 + chunk
                first = False
            yield chunk
        if first:
            yield codecs.BOM_UTF8 + _csv_line([ERRORS_CSV_COLUMN]).encode()


async def store_upload(conn: Any, import_id: int, stream: IO[bytes]) -> int:
    """Copy `stream` into `import_upload_chunks`; returns its size."""
    await conn.execute("INSERT INTO import_uploads (import_id, size) VALUES ($1, 0)", import_id)
    size = 0
    seq = 0
    while chunk := stream.read(CHUNK_BYTES):
        await conn.execute(
            "INSERT INTO import_upload_chunks (import_id, seq, data) VALUES ($1, $2, $3)",
            import_id,
            seq,
            chunk,
        )
        seq += 1
        size += len(chunk)
    await conn.execute("UPDATE import_uploads SET size = $2 WHERE import_id = $1", import_id, size)
    return size


async def load_upload(conn: Any, import_id: int) -> IO[bytes]:
    """The stored file as a rewound temporary file, read one chunk at a time."""
    output = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    seq = 0
    while True:
        data: bytes | None = await conn.fetchval(
            "SELECT data FROM import_upload_chunks WHERE import_id = $1 AND seq = $2",
            import_id,
            seq,
        )
        if data is None:
            break
        output.write(data)
        seq += 1
    output.seek(0)
    return output


class ImportRepository(SQLAlchemyAsyncRepository[Import]):
    model_type = Import


class ImportHistory(SQLAlchemyAsyncRepositoryService[Import, ImportRepository]):
    """Reads the imports back: newest first, with the progress of a running one."""

    repository_type = ImportRepository
    # Two queries: the total stays right on a page past the end.
    count_with_window_function = False

    async def page(self, *, limit: int, offset: int) -> OffsetPagination[ImportSummary]:
        items, total = await self.get_many_and_count(
            OrderBy(field_name="id", sort_order="desc"), LimitOffset(limit=limit, offset=offset)
        )
        progress = await self._rows_done([i.id for i in items if i.status == "running"])
        return OffsetPagination(
            items=[describe(i, progress.get(i.id), ImportSummary) for i in items],
            total=total,
            limit=limit,
            offset=offset,
        )

    async def report(self, import_id: int) -> ImportOut:
        """The full report; `ImportNotFound` when there is no such import."""
        item = await self._one(import_id)
        progress = await self._rows_done([item.id]) if item.status == "running" else {}
        return describe(item, progress.get(item.id), ImportOut)

    async def finished(self, import_id: int) -> Import:
        """The import, once it has finished (its errors.csv exists only then)."""
        item = await self._one(import_id)
        if item.status in ("queued", "running"):
            raise ImportNotFinished(import_id, item.status)
        return item

    async def _one(self, import_id: int) -> Import:
        item = await self.get_one_or_none(Import.id == import_id)
        if item is None:
            raise ImportNotFound(import_id)
        return item

    async def _rows_done(self, running: list[int]) -> dict[int, int]:
        if not running:
            return {}
        result = await self.repository.session.execute(
            select(import_uploads.c.import_id, import_uploads.c.rows_done).where(
                import_uploads.c.import_id.in_(running)
            )
        )
        return {import_id: rows_done for import_id, rows_done in result}
