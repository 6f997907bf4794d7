"""The optimistic path for clean CSV files: PostgreSQL parses and validates, Python only streams.

For a UTF-8 CSV (with or without BOM) whose source can be read again, the raw bytes go straight
into `COPY import_raw FROM STDIN (FORMAT csv)`, a temporary table of text columns. SQL then casts
and checks every value: the checks accept a subset of what `validation.RowValidator` accepts (the
common, canonical spellings), and give the same values for it. Anything else — a value the
checks refuse, a ragged row, a blank line, bytes that are not UTF-8, a quote PostgreSQL would
read differently from Python's csv module, a barcode twice — makes a statement fail, the
transaction is rolled back and `attempt` answers None: the caller then runs the Python path on
the same file, which reports the exact errors. So this path only has to be right for clean
files; everything a user sees on a dirty one comes from the Python path.

Two connections share the work, so both cores do some. The same bytes are COPYed into a raw
table on each, at the same time. The import's connection casts the values and MERGEs them into
`products` in the import's one transaction; meanwhile a helper connection runs the checks on
its copy. The import commits only if the helper found no value to refuse (a cast that fails, a
barcode twice or a broken constraint fails the MERGE itself).

`stats` counts the outcomes (for tests and logs); each fallback is also logged with its reason.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import IO, Any

from ekimo.imports.fast import outcome as fast_paths
from ekimo.imports.fast.outcome import FastOutcome, NotFast
from ekimo.imports.header import map_header
from ekimo.imports.validation import MAX_NAME_LENGTH
from ekimo.products.writes import (
    lock_for_import,
    merge_into_products,
    write_counted,
)

log = logging.getLogger(__name__)

Connection = Any
Progress = Callable[[int], None]
# Opens the helper connection (another connection of the same database).
HelperConnection = Callable[[], AbstractAsyncContextManager[Connection]]
# File chunks for one COPY: bytes, then None at the end, or the exception that stopped reading.
_Chunks = asyncio.Queue[bytes | BaseException | None]

CHUNK_BYTES = 1024 * 1024
HEADER_BYTES = 64 * 1024
CSV_DELIMITERS = (",", ";", "\t")
# Chunks read ahead for each of the two COPYs.
QUEUED_CHUNKS = 4

# False: always the Python path (to compare the two, in tests and benchmarks).
enabled = True
# Outcomes: "taken" (the fast path imported the file), "fallback" (the Python path must run).
stats: Counter[str] = Counter()

# What str.strip() removes. A name may not start or end with any of them here (the Python path
# would strip it; rare, so such a file simply takes the Python path).
# Written out rather than found among all code points at every start (a test checks the list
# against str.isspace).
SPACES = (
    *range(9, 14),
    *range(28, 33),
    133,
    160,
    5760,
    *range(8192, 8203),
    8232,
    8233,
    8239,
    8287,
    12288,
)
_NON_ASCII_SPACES = ", ".join(str(code) for code in SPACES if code > 32)
# A quoted field, from its opening quote to its closing one ("" inside is an escaped quote).
# Possessive: no backtracking to a "" in the middle when the closing quote is in a later chunk.
_QUOTED = re.compile(rb'"[^"]*+(?:""[^"]*+)*+"')
# A quoted field longer than this is refused (Python's csv refuses fields over 128 KB anyway).
MAX_CARRY = 256 * 1024


@dataclass
class _Header:
    delimiter: str
    cells: list[str]
    positions: dict[str, int]
    warnings: list[str]
    body_offset: int  # bytes from the start of the file to the header line (after any BOM)


def _read_header(head: bytes) -> _Header:
    """The header as the Python path reads it, or `NotFast` when that path must decide."""

    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise NotFast("UTF-16")
    offset = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    if b"\x00" in head:
        raise NotFast("NUL bytes")
    # The Python path takes the first physical line (\n, \r\n or \r) as the header.
    end = min(
        (i for i in (head.find(b"\n", offset), head.find(b"\r", offset)) if i >= 0), default=-1
    )
    if end < 0:
        raise NotFast("no complete header line")
    line = head[offset:end]
    if b'"' in line:
        raise NotFast("quotes in the header")
    try:
        first = line.decode()
    except UnicodeDecodeError:
        raise NotFast("header not UTF-8") from None
    if not first.strip():
        raise NotFast("empty header")
    counts = {d: first.count(d) for d in CSV_DELIMITERS}
    delimiter = max(CSV_DELIMITERS, key=lambda d: counts[d])
    cells = next(csv.reader([first], delimiter=delimiter))
    try:
        positions, warnings = map_header(cells)
    except Exception:
        raise NotFast("header refused") from None
    return _Header(delimiter, cells, positions, warnings, offset)


class _QuoteCheck:
    """Refuses quoting that PostgreSQL's CSV parser would read differently from Python's csv.

    Accepted: a quote that opens a field (at the start of a line or after the delimiter), whose
    field ends with a quote followed by the delimiter or a line break, with "" inside. For such
    files both parsers give the same records. Also refused: a line `\\.` (PostgreSQL's end of
    data marker).
    """

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter.encode()
        self.boundaries = (self.delimiter[0], 10, 13)  # delimiter, \n, \r
        self.carry = b""  # an unfinished quoted field from the previous chunk
        self.previous = 10  # the byte before the chunk (a line break at the start)

    def feed(self, chunk: bytes, final: bool) -> None:
        data = self.carry + chunk
        if b"\\." in data or (self.previous == 92 and data[:1] == b"."):
            raise NotFast("a \\. in the data")
        self.carry = b""
        at = data.find(b'"')
        while at >= 0:
            before = data[at - 1] if at > 0 else self.previous
            if before not in self.boundaries:
                raise NotFast("a quote inside an unquoted field")
            match = _QUOTED.match(data, at)
            # The byte after the closing quote decides; it may be in the next chunk.
            if match is None or (match.end() == len(data) and not final):
                # The quoted field goes on in the next chunk (or never ends: COPY will say).
                if match is None and final:
                    raise NotFast("an unterminated quote")
                self.carry = data[at:]
                if len(self.carry) > MAX_CARRY:
                    raise NotFast("a very long quoted field")
                data = data[:at]
                break
            end = match.end()
            if end < len(data) and data[end] not in self.boundaries:
                raise NotFast("text after a closing quote")
            at = data.find(b'"', end)
        if data:
            self.previous = data[-1]


@dataclass
class _Sql:
    raw_ddl: str
    merge_source: str  # the cast values of every non-blank row, for the MERGE
    barcodes: str  # the barcode of every non-blank row (for counting the new ones)
    refused: str  # how many rows a check refuses (must be 0)
    blank: str  # how many all-empty records (not rows)


def _sql(header: _Header, count: int) -> _Sql:
    """The statements for a file of `count` columns (column names made here: no text from the
    file goes into the SQL)."""
    columns = [f"c{i}" for i in range(count)]
    ddl = (
        "CREATE TEMP TABLE import_raw ("
        + ", ".join(f"{c} text" for c in columns)
        + ") ON COMMIT DROP"
    )
    at = header.positions
    barcode, name = f"c{at['barcode']}", f"c{at['name']}"
    price, quantity = f"c{at['price']}", f"c{at['quantity']}"
    updated = f"c{at['last_updated']}" if "last_updated" in at else "''::text"
    if header.delimiter == ";":
        # Decimal commas, exactly as the Python path: every comma becomes a point.
        price, quantity = f"replace({price}, ',', '.')", f"replace({quantity}, ',', '.')"
    blank = " AND ".join(f"{c} = ''" for c in columns)
    # OFFSET 0 keeps the casts a subquery of their own: each value is cast once.
    cast = f"""
        SELECT {barcode} AS barcode, {name} AS raw_name,
            CASE WHEN {name} LIKE '''=%' OR {name} LIKE '''+%' OR {name} LIKE '''-%'
                OR {name} LIKE '''@%' THEN substr({name}, 2) ELSE {name} END AS name,
            {price} AS price_text, ({price})::numeric AS price,
            {quantity} AS quantity_text, ({quantity})::numeric AS quantity,
            {updated} AS updated_text,
            CASE WHEN {updated} <> '' THEN ({updated})::timestamp END AS updated
        FROM import_raw WHERE NOT ({blank}) OFFSET 0
    """  # noqa: S608
    # Numbers: canonical text only (what numeric prints back), >= 0, < 10^12, no extra digits.
    checks = f"""
        octet_length(barcode) BETWEEN 1 AND 14
        AND barcode::int8::text = coalesce(nullif(ltrim(barcode, '0'), ''), '0')
        AND ascii(raw_name) > 32 AND ascii(raw_name) NOT IN ({_NON_ASCII_SPACES})
        AND ascii(right(raw_name, 1)) > 32
        AND ascii(right(raw_name, 1)) NOT IN ({_NON_ASCII_SPACES})
        AND length(name) BETWEEN 1 AND {MAX_NAME_LENGTH}
        AND price::text = price_text AND price >= 0 AND price < 1e12 AND scale(price) <= 2
        AND quantity::text = quantity_text AND quantity >= 0 AND quantity < 1e12
        AND scale(quantity) <= 3
        AND (updated_text = '' OR (
            (updated_text LIKE '____-__-__T__:__:__' OR updated_text LIKE '____-__-__ __:__:__')
            AND updated::text = replace(updated_text, 'T', ' ')))
    """
    merge_source = f"""(
        SELECT barcode, name, price, quantity,
            CASE WHEN updated_text <> '' THEN updated AT TIME ZONE 'UTC' END AS last_updated
        FROM ({cast}) AS r)"""  # noqa: S608
    return _Sql(
        raw_ddl=ddl,
        merge_source=merge_source,
        barcodes=f"(SELECT {barcode} AS barcode FROM import_raw WHERE NOT ({blank}))",  # noqa: S608
        refused=f"SELECT count(*) FROM ({cast}) AS r WHERE ({checks}) IS NOT TRUE",  # noqa: S608
        blank=f"SELECT count(*) FROM import_raw WHERE {blank}",  # noqa: S608
    )


def _step(what: str, since: float) -> float:
    now = time.perf_counter()
    log.debug("import fast path: %s %.3f s", what, now - since)
    return now


async def attempt(
    conn: Connection,
    helper: HelperConnection,
    source: IO[bytes],
    *,
    dry_run: bool,
    progress: Progress | None,
) -> FastOutcome | None:
    """Import `source` the fast way, or None (with `source` where it was) to fall back."""
    if not enabled or not source.seekable():
        return None
    return await fast_paths.attempt(
        lambda: _attempt(conn, helper, source, dry_run, progress), conn, source, stats, log
    )


class _Reader:
    """The file after its header, in chunks, to both COPYs; hashes and checks quotes on the way."""

    def __init__(self, source: IO[bytes], progress: Progress | None) -> None:
        self.source = source
        self.progress = progress
        self.digest = hashlib.sha256()
        self.lines = 0
        self.checker_gone = False  # the checker's COPY failed: stop feeding it

    def header(self) -> tuple[_Header, _QuoteCheck, bytes]:
        head = self.source.read(HEADER_BYTES)
        self.digest.update(head)
        header = _read_header(head)
        return header, _QuoteCheck(header.delimiter), head[header.body_offset :]

    async def feed(
        self, quotes: _QuoteCheck, first: bytes, ours: _Chunks, checker: _Chunks
    ) -> None:
        def next_chunk() -> bytes:
            data = self.source.read(CHUNK_BYTES)
            self.digest.update(data)
            quotes.feed(data, final=not data)
            return data

        async def put(item: bytes | BaseException | None) -> None:
            await ours.put(item)
            if not self.checker_gone:
                await checker.put(item)

        try:
            data = first
            quotes.feed(data, final=False)
            while data:
                await put(data)
                self.lines += data.count(b"\n")
                if self.progress is not None:
                    self.progress(self.lines)
                reading = asyncio.ensure_future(asyncio.to_thread(next_chunk))
                try:
                    data = await asyncio.shield(reading)
                except asyncio.CancelledError:
                    # A thread cannot be stopped: let its read end before the caller falls
                    # back and seeks the same file.
                    await asyncio.gather(reading, return_exceptions=True)
                    raise
        except Exception as exc:
            await put(exc)
        else:
            await put(None)


async def _drain(queue: _Chunks) -> AsyncIterator[bytes]:
    while True:
        item = await queue.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


async def _copy_raw(conn: Connection, sql: _Sql, header: _Header, chunks: _Chunks) -> int:
    """COPY the file into `import_raw`; the number of records."""
    columns = [f"c{i}" for i in range(len(header.cells))]
    await conn.execute("SET LOCAL datestyle = 'ISO, YMD'")
    await conn.execute("SET LOCAL work_mem = '256MB'")
    await conn.execute(sql.raw_ddl)
    status: str = await conn.copy_to_table(
        "import_raw",
        source=_drain(chunks),
        format="csv",
        header=True,
        delimiter=header.delimiter,
        columns=columns,
        force_not_null=columns,
    )
    return int(status.rsplit(" ", 1)[-1])


async def _check(
    checker: Connection, sql: _Sql, header: _Header, chunks: _Chunks, reader: _Reader
) -> int:
    """The helper connection's part: the number of rows, or `NotFast` if a check refuses one."""
    try:
        copied = await _copy_raw(checker, sql, header, chunks)
    except BaseException:
        reader.checker_gone = True
        while not chunks.empty():  # unblock the reader, which may wait to put one more
            chunks.get_nowait()
        raise
    clock = time.perf_counter()
    refused: int = await checker.fetchval(sql.refused)
    if refused:
        raise NotFast(f"{refused} rows not in the fast path's spelling")
    blank: int = await checker.fetchval(sql.blank)
    _step("checks", clock)
    return copied - blank


async def _attempt(
    conn: Connection,
    helper: HelperConnection,
    source: IO[bytes],
    dry_run: bool,
    progress: Progress | None,
) -> FastOutcome:
    reader = _Reader(source, progress)
    header, quotes, first = await asyncio.to_thread(reader.header)
    sql = _sql(header, len(header.cells))
    # On failure the helper connection may be mid-statement: `helper` closes it, not pools it.
    async with helper() as checker:
        checking = checker.transaction()  # its temporary table goes with the rollback
        await checking.start()
        outcome = await _import(conn, checker, sql, reader, header, quotes, first, dry_run)
        await checking.rollback()
        return outcome


async def _import(
    conn: Connection,
    checker: Connection,
    sql: _Sql,
    reader: _Reader,
    header: _Header,
    quotes: _QuoteCheck,
    first: bytes,
    dry_run: bool,
) -> FastOutcome:
    ours: _Chunks = asyncio.Queue(QUEUED_CHUNKS)
    theirs: _Chunks = asyncio.Queue(QUEUED_CHUNKS)
    feeding = asyncio.create_task(reader.feed(quotes, first, ours, theirs))
    checking = asyncio.create_task(_check(checker, sql, header, theirs, reader))
    transaction = conn.transaction()
    await transaction.start()
    clock = time.perf_counter()
    try:
        copied = await _copy_raw(conn, sql, header, ours)
        clock = _step("COPY", clock)
        if dry_run:
            created, updated = await fast_paths.dry_run_counts(conn, sql.merge_source)
        else:
            # The whole file is staged: only now the write lock, for the MERGE.
            await lock_for_import(conn)
            now = await conn.fetchval("SELECT clock_timestamp()")
            created, updated = await write_counted(
                conn, merge_into_products(sql.merge_source), now, sql.barcodes, copied
            )
        clock = _step("MERGE", clock)
        rows = await checking  # nothing commits before the checks passed
        _step("waiting for the checks", clock)
        if created + updated > rows:
            raise NotFast("the MERGE touched more rows than the file has")
        if reader.progress is not None:
            reader.progress(rows)
    except BaseException:
        for task in (feeding, checking):
            task.cancel()
        await asyncio.gather(feeding, checking, return_exceptions=True)
        if not conn.is_closed():
            await transaction.rollback()
        raise
    outcome = FastOutcome(
        rows=rows,
        created=created,
        updated=updated,
        warnings=header.warnings,
        sha256=reader.digest.hexdigest(),
        transaction=transaction,
        header=header.cells,
        positions=header.positions,
    )
    if dry_run:
        await transaction.rollback()
        outcome.transaction = None
    return outcome
