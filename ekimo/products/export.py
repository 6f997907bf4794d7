"""Export the catalog as CSV or XLSX in the import's own columns, batch by batch.

Rows come from a server-side cursor, so memory stays flat whatever the size of the catalog.
Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets a leading `'`;
the import removes it again, so an exported file imports with every row unchanged.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import re
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any, cast

from openpyxl import Workbook
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ekimo.products.catalog import ProductQuery
from ekimo.products.models import Product

COLUMNS = ("barcode", "name", "price", "quantity", "last_updated")
BATCH_SIZE = 1000
FILE_CHUNK = 64 * 1024

# barcode, name, price, quantity, last_updated
ExportRow = tuple[str, str, Decimal, Decimal, datetime]
CSV_MEDIA_TYPE = "text/csv"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# A cell starting with one of these runs as a formula in spreadsheets. The escape is a leading
# `'`; a value that already starts with `'`s before such a character gets one more, so that
# "remove one leading `'` before `'*[=+-@]`" (the import's rule) restores every value.
_FORMULA_START = re.compile(r"'*[=+\-@]")
# Control characters XLSX cannot hold (openpyxl refuses them).
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def escape_formula(text: str) -> str:
    return "'" + text if _FORMULA_START.match(text) else text


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, microseconds only when there are any."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


async def product_rows(
    engine: AsyncEngine, query: ProductQuery, batch_size: int = BATCH_SIZE
) -> AsyncIterator[list[ExportRow]]:
    """The selected products in batches, read through one server-side cursor (one snapshot)."""
    columns = select(
        Product.barcode, Product.name, Product.price, Product.quantity, Product.last_updated
    )
    statement = query.apply(cast("Select[Any]", columns)).execution_options(yield_per=batch_size)
    async with engine.connect() as connection:
        result = await connection.stream(statement)
        async for batch in result.partitions(batch_size):
            yield [cast(ExportRow, tuple(row)) for row in batch]


def _csv_line(values: Sequence[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


async def csv_chunks(engine: AsyncEngine, query: ProductQuery) -> AsyncGenerator[bytes]:
    """The CSV file (UTF-8, RFC 4180 quoting), one chunk per batch of products.

    It starts with a byte order mark, so that Excel reads it as UTF-8 (the import skips it).
    The first chunk is the header with the first batch: made only once the query has run, so a
    query that fails fails before anything is sent (`ekimo.downloads.started`).
    """
    header = codecs.BOM_UTF8 + _csv_line(COLUMNS).encode()
    async for batch in product_rows(engine, query):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        for barcode, name, price, quantity, last_updated in batch:
            writer.writerow(
                (barcode, escape_formula(name), price, quantity, format_timestamp(last_updated))
            )
        yield header + buffer.getvalue().encode()
        header = b""
    if header:  # no product selected: the header alone
        yield header


def _xlsx_row(row: ExportRow) -> list[object]:
    barcode, name, price, quantity, last_updated = row
    name_cell = _XLSX_ILLEGAL.sub("", escape_formula(name))
    # Barcode and timestamp as text (leading zeros, microseconds and the UTC mark survive);
    # price and quantity as exact decimal numbers.
    return [
        str(barcode),
        name_cell,
        Decimal(price),
        Decimal(quantity),
        format_timestamp(last_updated),
    ]


async def build_xlsx(engine: AsyncEngine, query: ProductQuery) -> IO[bytes]:
    """Write the XLSX file (openpyxl write-only) to an anonymous temporary file, rewound.

    The workbook streams its rows to disk as they come; the caller streams the file and closes it.
    """
    workbook = Workbook(write_only=True)
    sheet: Any = workbook.create_sheet("products")  # pyright: ignore[reportUnknownMemberType]
    sheet.append(list(COLUMNS))
    output = tempfile.TemporaryFile()  # noqa: SIM115 - the caller streams and closes it
    try:
        async for batch in product_rows(engine, query):
            rows = [_xlsx_row(row) for row in batch]
            await asyncio.to_thread(_append_rows, sheet, rows)
        await asyncio.to_thread(workbook.save, output)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    except BaseException:
        output.close()
        raise
    output.seek(0)
    return output


def _append_rows(sheet: Any, rows: list[list[object]]) -> None:
    for row in rows:
        sheet.append(row)


async def file_chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    """Stream an open file in chunks, closing (and so deleting) it at the end."""
    try:
        while chunk := await asyncio.to_thread(file.read, FILE_CHUNK):
            yield chunk
    finally:
        file.close()
