"""The optimistic path for clean .xlsx files: typed cells, checked a column at a time.

A workbook whose first sheet can be cut into pieces (`sheet_pieces`) is read piece by piece,
in the import's one transaction: a worker thread reads the next piece (by its row layout,
`sheet_layout`, else with calamine) and checks it while PostgreSQL stages the previous one, so
the two cores work at once.
A clean sheet's cells are already typed (numbers, date-times): a piece goes as COPY text (built
in the worker thread, not record by record on the event loop) into a temporary staging table.
Once the whole sheet is staged, the catalog's write lock is taken and one INSERT (when every
barcode is new) or one MERGE applies it: a slow upload holds up no other writer while it is
read (a dry run counts what the write would do, without the lock). Numbers go as the text the
Python path gives them (15 significant digits: 19.989999999999998 → 19.99).

The checks run without Python code per row and accept a subset of what the Python path accepts
(the common, canonical cells), with the same values for it. Anything else — a number stored as
text, a barcode stored as a number, a blank row, a value out of range, a barcode twice, a sheet
that cannot be cut — rolls the transaction back and `attempt` answers None: the caller then runs
the Python path on the same file, which reports the exact errors.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime
from operator import itemgetter
from typing import IO, Any

from ekimo.imports.fast import outcome as fast_paths
from ekimo.imports.fast.outcome import FastOutcome, NotFast
from ekimo.imports.fast.sheet_layout import Columns, RowLayout
from ekimo.imports.fast.sheet_pieces import Cutter, Piece, first_sheet_part, parse_piece
from ekimo.imports.header import map_header
from ekimo.imports.readers import check_zip, sha256_of
from ekimo.imports.validation import INTEGER_DIGITS, MAX_NAME_LENGTH
from ekimo.products.writes import (
    insert_new_products,
    lock_for_import,
    merge_into_products,
    write_counted,
    write_new,
)

log = logging.getLogger(__name__)

Connection = Any
Progress = Callable[[int], None]

# False: always the Python path (to compare the two, in tests and benchmarks).
enabled = True
# Outcomes: "taken" (the fast path imported the file), "fallback" (the Python path must run);
# "pieces": how many pieces the taken files had.
stats: Counter[str] = Counter()

# The whole sheet, staged before the write; COPY parses the numbers.
STAGING_DDL = """
CREATE TEMP TABLE import_sheet (
    barcode text, name text, price numeric, quantity numeric, last_updated timestamp,
    excel_ms bigint
) ON COMMIT DROP
"""
# `sheet_layout.moment` in SQL, in integers: a float interval of milliseconds would lose some
# beyond the year 2185.
EXCEL_MOMENT = (
    "timestamp '1899-12-30' + (excel_ms / 86400000) * interval '1 day'"
    " + (excel_ms % 86400000) * interval '1 millisecond'"
)
# Row by row through the barcode index: the planner knows nothing of the staging table (never
# analysed) and, after a TRUNCATE, may believe `products` is empty (a scan of it per row).
# `jit`: the penalties above make every plan look costly enough to compile.
PLANNER = (
    "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;"
    " SET LOCAL enable_seqscan = off; SET LOCAL jit = off"
)
_SHEET = (
    "(SELECT barcode, name, price, quantity,"  # noqa: S608
    f" coalesce(last_updated, {EXCEL_MOMENT}) AT TIME ZONE 'UTC' AS last_updated"
    " FROM import_sheet)"
)
MERGE = merge_into_products(_SHEET)
# A sheet of new products only: the MERGE's insert without its join.
INSERT = insert_new_products(_SHEET)
# Stops at the first known barcode (a re-import: at once); else a probe per row.
ANY_KNOWN = "SELECT EXISTS (SELECT 1 FROM import_sheet s JOIN products p ON p.barcode = s.barcode)"
COLUMNS = ["barcode", "name", "price", "quantity", "last_updated", "excel_ms"]

_BARCODES = re.compile(r"[0-9]{1,14}(?:\n[0-9]{1,14})*")
_FLOAT_15G = "{:.15g}".format  # the Python path's text of a float cell (validation.float_text)
_PRICES = re.compile(r"\d{1,12}(?:\.\d{1,2})?(?:\n\d{1,12}(?:\.\d{1,2})?)*")
_QUANTITIES = re.compile(r"\d{1,12}(?:\.\d{1,3})?(?:\n\d{1,12}(?:\.\d{1,3})?)*")
_NUMBER_LIMIT = 10.0**INTEGER_DIGITS


class _Sheet:
    """The sheet's pieces as checked COPY data, read in a worker thread piece by piece.

    The first piece is read by calamine; from it a `RowLayout` is learnt, which reads the
    next pieces itself when they are all rows of that layout (else calamine reads them too).
    """

    def __init__(self, stream: IO[bytes], max_bytes: int) -> None:
        check_zip(stream, max_bytes)
        self.sha256 = sha256_of(stream)
        archive = zipfile.ZipFile(stream)
        part = first_sheet_part(archive)
        if part is None or part not in archive.namelist():
            raise NotFast("the workbook's first sheet was not found")
        self.cutter = Cutter(archive, part)
        if not self.cutter.can_cut():
            raise NotFast("the sheet cannot be cut into pieces")
        self.chunks = self.cutter.pieces()
        self.layout: RowLayout | None = None
        self.header: list[str] = []
        self.positions: dict[str, int] = {}
        self.warnings: list[str] = []
        self.rows = 0
        self.pieces = 0
        self.first_column = 0
        self.barcodes: set[str] = set()

    def next_records(self) -> bytes | None:
        """The next piece's rows as COPY text, None at the end; `NotFast` if not clean."""
        chunk = next(self.chunks, None)
        if chunk is None:
            return None
        self.pieces += 1
        if self.layout is not None and (columns := self.layout.read(chunk)) is not None:
            stats["layout pieces"] += 1
            return self._records(columns)
        piece = parse_piece(self.cutter.workbook(chunk))
        rows = piece.rows
        if not self.header:
            rows = self._read_header(piece)
            if not self.cutter.dates_from_1904():
                self.layout = RowLayout.learn(
                    chunk,
                    piece.first_row,
                    piece.first_column,
                    self.positions,
                    rows,
                    self.cutter.shared_strings,
                )
        elif rows and piece.first_column != self.first_column:
            raise NotFast("a piece's cells start in another column")
        if not rows:
            return b""
        return self._records(self._columns(rows))

    def _read_header(self, piece: Piece) -> list[list[Any]]:

        if not piece.rows or not all(type(cell) is str for cell in piece.rows[0]):
            raise NotFast("the first row is not a header of text")
        self.header = piece.rows[0]
        self.positions, self.warnings = map_header(self.header)
        self.first_column = piece.first_column
        return piece.rows[1:]

    def _columns(self, rows: list[list[Any]]) -> Columns:
        """Calamine's rows a column at a time, the text ones and the date-times checked."""
        at = self.positions
        if len(set(map(len, rows))) != 1 or len(rows[0]) <= max(at.values()):
            raise NotFast("rows of another width")

        def column(name: str) -> Any:
            # One column at a time: cheaper than transposing every row with zip(*rows).
            return tuple(map(itemgetter(at[name]), rows))

        return Columns(
            barcode=_text_column(column("barcode")),
            name=_text_column(column("name")),
            price=_number_cells(column("price")),
            quantity=_number_cells(column("quantity")),
            last_updated=(_moment_column(column("last_updated")) if "last_updated" in at else None),
        )

    def _records(self, columns: Columns) -> bytes:
        barcodes, names = columns.barcode, columns.name
        prices = _number_column(columns.price, _PRICES)
        quantities = _number_column(columns.quantity, _QUANTITIES)
        joined = "\n".join(barcodes)
        if _BARCODES.fullmatch(joined) is None or joined.count("\n") != len(barcodes) - 1:
            raise NotFast("a barcode that is not 1 to 14 digits")
        if (
            min(map(len, names)) < 1
            or max(map(len, names)) > MAX_NAME_LENGTH
            or "\n'" in "\n" + "\n".join(names)  # a name starting with ' may be escaped
            or list(map(str.strip, names)) != list(names)
        ):
            raise NotFast("a name to trim, unescape or refuse")
        before = len(self.barcodes)
        self.barcodes.update(barcodes)
        if len(self.barcodes) != before + len(barcodes):
            raise NotFast("a barcode twice")
        self.rows += len(barcodes)
        # COPY's text format, built here rather than encoded record by record on the event loop.
        nulls = (_NULL,) * len(barcodes)
        updated = _moment_texts(columns.last_updated) if columns.last_updated else nulls
        excel_ms = list(map(str, columns.excel_ms)) if columns.excel_ms else nulls
        rows = zip(
            barcodes, _copy_escaped(names), prices, quantities, updated, excel_ms, strict=True
        )
        return ("\n".join(map("\t".join, rows)) + "\n").encode()


_NULL = "\\N"
_COPY_SPECIAL = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_escaped(texts: list[str]) -> list[str]:
    """Texts as COPY's text format wants them (backslash, tab and line breaks escaped)."""
    joined = "".join(texts)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        return [text.translate(_COPY_SPECIAL) for text in texts]
    return texts


def _moment_texts(values: Sequence[datetime | None]) -> list[str]:
    return [_NULL if value is None else str(value) for value in values]


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _text_column(values: tuple[Any, ...]) -> list[str]:
    if set(map(type, values)) != {str}:
        raise NotFast("a text column with other cells")
    return list(values)


def _number_cells(values: tuple[Any, ...]) -> tuple[float, ...]:
    if not set(map(type, values)) <= {float, int}:
        raise NotFast("a number column with other cells")
    return values


def _number_column(values: Sequence[float] | list[str], pattern: re.Pattern[str]) -> list[str]:
    """Numbers >= 0 and < 10^12 with few enough decimals, as their text of 15 significant
    digits (PostgreSQL reads a numeric from text faster than from a float8). A row layout
    gives that text already (`sheet_layout`), calamine gives floats."""
    if values and type(values[0]) is str:  # a layout's texts (calamine's: `_number_cells`)
        texts: list[str] = values  # type: ignore[assignment]
    else:
        numbers: Sequence[float] = values  # type: ignore[assignment]
        if not all(map(math.isfinite, numbers)) or max(numbers) >= _NUMBER_LIMIT:
            raise NotFast("a number out of range")
        texts = list(map(_FLOAT_15G, numbers))
    if pattern.fullmatch("\n".join(texts)) is None:  # also refuses < 0 and >= 10^12
        raise NotFast("a number with too many decimals")
    return texts


def _moment_column(values: tuple[Any, ...]) -> list[datetime | None]:
    """Date-times (naive: UTC), or None for an empty cell (the time of the import)."""
    kinds = set(map(type, values))
    if kinds == {datetime}:
        return list(values)
    if not kinds <= {datetime, date, str} or any(v != "" for v in values if type(v) is str):
        raise NotFast("a last_updated column with other cells")
    # calamine gives a date for a date-time at midnight.
    return [
        v if type(v) is datetime else None if type(v) is str else datetime(v.year, v.month, v.day)
        for v in values
    ]


async def attempt(
    conn: Connection,
    source: IO[bytes],
    max_bytes: int,
    *,
    dry_run: bool,
    progress: Progress | None,
) -> FastOutcome | None:
    """Import `source` the fast way, or None (with `source` where it was) to fall back."""
    if not enabled or not source.seekable():
        return None
    return await fast_paths.attempt(
        lambda: _attempt(conn, source, max_bytes, dry_run, progress), conn, source, stats, log
    )


async def _attempt(
    conn: Connection, source: IO[bytes], max_bytes: int, dry_run: bool, progress: Progress | None
) -> FastOutcome:
    sheet = await asyncio.to_thread(_Sheet, source, max_bytes)
    transaction = conn.transaction()
    await transaction.start()
    # The next piece is parsed and checked in a thread while PostgreSQL stages this one.
    ahead = asyncio.ensure_future(asyncio.to_thread(sheet.next_records))
    try:
        await conn.execute(PLANNER)
        await conn.execute(STAGING_DDL)
        waited = staging = 0.0  # seconds waiting for a piece, and for PostgreSQL (debug log)
        clock = time.perf_counter()
        while (records := await ahead) is not None:
            waited += time.perf_counter() - clock
            ahead = asyncio.ensure_future(asyncio.to_thread(sheet.next_records))
            clock = time.perf_counter()
            if records:
                await conn.copy_to_table("import_sheet", source=_once(records), columns=COLUMNS)
                if progress is not None:
                    progress(sheet.rows)
            staging += time.perf_counter() - clock
            clock = time.perf_counter()
        if not sheet.header:
            raise NotFast("no header")
        if dry_run:
            created, updated = await fast_paths.dry_run_counts(conn, _SHEET)
        else:
            # Only now the write lock: other imports and the receiver wait for the write alone.
            await lock_for_import(conn)
            created, updated = await _write(conn, sheet.rows)
        log.debug(
            "import fast path: %.3f s waiting for pieces, %.3f s staging,"
            " %.3f s taking the lock and writing",
            waited,
            staging,
            time.perf_counter() - clock,
        )
    except BaseException:
        # A thread cannot be stopped: let it end its piece before the caller falls back and
        # reads the same file.
        await asyncio.gather(ahead, return_exceptions=True)
        if not conn.is_closed():
            await transaction.rollback()
        raise
    stats["pieces"] += sheet.pieces
    log.debug("import fast path: %d pieces", sheet.pieces)
    outcome = FastOutcome(
        rows=sheet.rows,
        created=created,
        updated=updated,
        warnings=sheet.warnings,
        sha256=sheet.sha256,
        transaction=transaction,
        header=sheet.header,
        positions=sheet.positions,
    )
    if dry_run:
        await transaction.rollback()
        outcome.transaction = None
    return outcome


async def _write(conn: Connection, rows: int) -> tuple[int, int]:
    """Apply the staged sheet, under the write lock: (created, updated)."""
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    if not await conn.fetchval(ANY_KNOWN):
        # Nobody else writes meanwhile and the sheet has no barcode twice (`_records`): the
        # insert cannot meet a known barcode.
        return await write_new(conn, INSERT, now), 0
    return await write_counted(conn, MERGE, now, "import_sheet", rows)
