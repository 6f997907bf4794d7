"""The rows an import rejects, collected while it validates (spooled to disk beyond a few MB)
and stored for `GET /imports/{id}/errors.csv`. Plain asyncpg: the import path loads no ORM."""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

HEADER_ROW = 0
SPOOL_BYTES = 4 * 1024 * 1024


class RejectedRows:
    """Collects rejected rows while an import validates, spooled to disk beyond a few MB."""

    def __init__(self) -> None:
        self.header: list[str] | None = None
        self.positions: dict[str, int] = {}
        self.count = 0
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+t")  # noqa: SIM115
        self._writer = csv.writer(self._spool)

    def set_header(self, header: list[str], positions: dict[str, int]) -> None:
        self.header = header
        self.positions = positions

    def add(self, row_no: int, cells: list[str], messages: list[str]) -> None:
        self.count += 1
        self._writer.writerow((row_no, json.dumps(cells), "; ".join(messages)))

    def add_values(self, row_no: int, values: dict[str, str], message: str) -> None:
        """A row rejected after validation (a duplicate barcode): its values by column name."""
        width = len(self.header) if self.header else len(values)
        cells = [""] * width
        for column, value in values.items():
            position = self.positions.get(column)
            if position is not None and position < width:
                cells[position] = value
        self.add(row_no, cells, [message])

    async def save(self, conn: Any, import_id: int | None) -> None:
        """Store the header and the rows for `import_id`, in one transaction."""
        try:
            if import_id is None or self.header is None:
                return
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO import_rejected_rows (import_id, row_no, cells, error) "
                    "VALUES ($1, $2, $3::jsonb, NULL) ON CONFLICT DO NOTHING",
                    import_id,
                    HEADER_ROW,
                    json.dumps(self.header),
                )
                if not self.count:
                    return
                self._spool.flush()
                self._spool.seek(0)
                await conn.execute(
                    "CREATE TEMP TABLE import_rejected_staging "
                    "(row_no integer, cells jsonb, error text) ON COMMIT DROP"
                )
                await conn.copy_to_table(
                    "import_rejected_staging", source=_encoded(self._spool), format="csv"
                )
                # A row rejected both while reading and in SQL keeps the first messages.
                await conn.execute(
                    "INSERT INTO import_rejected_rows (import_id, row_no, cells, error) "
                    "SELECT DISTINCT ON (row_no) $1, row_no, cells, error "
                    "FROM import_rejected_staging ORDER BY row_no "
                    "ON CONFLICT DO NOTHING",
                    import_id,
                )
        finally:
            self.close()

    def close(self) -> None:
        self._spool.close()


async def _encoded(spool: IO[str]) -> AsyncIterator[bytes]:
    while chunk := spool.read(256 * 1024):
        yield chunk.encode()
