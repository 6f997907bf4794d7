"""The optimistic path for clean CSV files: PostgreSQL parses and validates, Python only streams.

For a UTF-8 CSV (with or without BOM) whose source can be read again, the raw bytes go straight
into `COPY import_raw FROM STDIN (FORMAT csv)`, a temporary table of text columns. One MERGE
then casts and checks every value in SQL while it upserts: the checks accept a subset of what
`rows.RowValidator` accepts (the common, canonical spellings), and give the same values for it.
Anything else — a value the checks refuse, a ragged row, a blank line, bytes that are not UTF-8,
a quote PostgreSQL would read differently from Python's csv module, a barcode twice — makes a
statement fail, the transaction is rolled back and `attempt` answers None: the caller then runs
the Python path on the same file, which reports the exact errors. So this path only has to be
right for clean files; everything a user sees on a dirty one comes from the Python path.

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
from dataclasses import dataclass
from typing import IO, Any

from ekimo.products.models import PRODUCTS_WRITE_LOCK, merge_into_products
from ekimo.products.rows import MAX_NAME_LENGTH

log = logging.getLogger(__name__)

Connection = Any
Progress = Callable[[int], None]

CHUNK_BYTES = 1024 * 1024
HEADER_BYTES = 64 * 1024
CSV_DELIMITERS = (",", ";", "\t")

# False: always the Python path (to compare the two, in tests and benchmarks).
enabled = True
# Outcomes: "taken" (the fast path imported the file), "fallback" (the Python path must run).
stats: Counter[str] = Counter()

# What str.strip() removes. A name may not start or end with any of them here (the Python path
# would strip it; rare, so such a file simply takes the Python path).
_SPACES = sorted({ord(c) for c in map(chr, range(0x110000)) if c.isspace()})
_NON_ASCII_SPACES = ", ".join(str(code) for code in _SPACES if code > 32)
# A quoted field, from its opening quote to its closing one ("" inside is an escaped quote).
# Possessive: no backtracking to a "" in the middle when the closing quote is in a later chunk.
_QUOTED = re.compile(rb'"[^"]*+(?:""[^"]*+)*+"')
# A quoted field longer than this is refused (Python's csv refuses fields over 128 KB anyway).
MAX_CARRY = 256 * 1024


class _NotFast(Exception):
    """This file (or this part of it) is not for the fast path."""


@dataclass
class FastOutcome:
    """A file imported by the fast path; `transaction` is open unless it was a dry run."""

    rows: int
    created: int
    updated: int
    warnings: list[str]
    sha256: str
    transaction: Any
    header: list[str]
    positions: dict[str, int]


@dataclass
class _Header:
    delimiter: str
    cells: list[str]
    positions: dict[str, int]
    warnings: list[str]
    body_offset: int  # bytes from the start of the file to the header line (after any BOM)


def _read_header(head: bytes) -> _Header:
    """The header as the Python path reads it, or `_NotFast` when that path must decide."""
    from ekimo.products.importer import map_header  # the importer imports this module

    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _NotFast("UTF-16")
    offset = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    if b"\x00" in head:
        raise _NotFast("NUL bytes")
    # The Python path takes the first physical line (\n, \r\n or \r) as the header.
    end = min(
        (i for i in (head.find(b"\n", offset), head.find(b"\r", offset)) if i >= 0), default=-1
    )
    if end < 0:
        raise _NotFast("no complete header line")
    line = head[offset:end]
    if b'"' in line:
        raise _NotFast("quotes in the header")
    try:
        first = line.decode()
    except UnicodeDecodeError:
        raise _NotFast("header not UTF-8") from None
    if not first.strip():
        raise _NotFast("empty header")
    counts = {d: first.count(d) for d in CSV_DELIMITERS}
    delimiter = max(CSV_DELIMITERS, key=lambda d: counts[d])
    cells = next(csv.reader([first], delimiter=delimiter))
    try:
        positions, warnings = map_header(cells)
    except Exception:
        raise _NotFast("header refused") from None
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
            raise _NotFast("a \\. in the data")
        self.carry = b""
        at = data.find(b'"')
        while at >= 0:
            before = data[at - 1] if at > 0 else self.previous
            if before not in self.boundaries:
                raise _NotFast("a quote inside an unquoted field")
            match = _QUOTED.match(data, at)
            # The byte after the closing quote decides; it may be in the next chunk.
            if match is None or (match.end() == len(data) and not final):
                # The quoted field goes on in the next chunk (or never ends: COPY will say).
                if match is None and final:
                    raise _NotFast("an unterminated quote")
                self.carry = data[at:]
                if len(self.carry) > MAX_CARRY:
                    raise _NotFast("a very long quoted field")
                data = data[:at]
                break
            end = match.end()
            if end < len(data) and data[end] not in self.boundaries:
                raise _NotFast("text after a closing quote")
            at = data.find(b'"', end)
        if data:
            self.previous = data[-1]


def _sql(header: _Header, count: int) -> tuple[str, str]:
    """(DDL, MERGE source query) for a file of `count` columns."""
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
    # Numbers: canonical text only (what numeric prints back), >= 0, < 10^12, no extra digits.
    checks = f"""
        octet_length(barcode) BETWEEN 1 AND 14
        AND barcode::int8::text = coalesce(nullif(ltrim(barcode, '0'), ''), '0')
        AND ascii(raw_name) > 32 AND ascii(raw_name) NOT IN ({_NON_ASCII_SPACES})
        AND ascii(right(raw_name, 1)) > 32
        AND ascii(right(raw_name, 1)) NOT IN ({_NON_ASCII_SPACES})
        AND length(name) BETWEEN 1 AND {MAX_NAME_LENGTH}
        AND price::text = price_text AND price >= 0 AND price < 1e12 AND price = round(price, 2)
        AND quantity::text = quantity_text AND quantity >= 0 AND quantity < 1e12
        AND quantity = round(quantity, 3)
        AND (updated_text = '' OR (
            (updated_text LIKE '____-__-__T__:__:__' OR updated_text LIKE '____-__-__ __:__:__')
            AND updated::text = replace(updated_text, 'T', ' ')))
    """
    # Column names made here; no text from the file goes into the SQL.
    # OFFSET 0 keeps each level a subquery, so the checks run once (not in the join condition
    # and again in the MERGE's INSERT).
    source = f"""
        SELECT CASE WHEN {checks} THEN barcode END AS barcode, name, price, quantity,
            CASE WHEN updated_text <> '' THEN updated AT TIME ZONE 'UTC' END AS last_updated
        FROM (
            SELECT {barcode} AS barcode, {name} AS raw_name,
                CASE WHEN {name} LIKE '''=%' OR {name} LIKE '''+%' OR {name} LIKE '''-%'
                    OR {name} LIKE '''@%' THEN substr({name}, 2) ELSE {name} END AS name,
                {price} AS price_text, ({price})::numeric AS price,
                {quantity} AS quantity_text, ({quantity})::numeric AS quantity,
                {updated} AS updated_text,
                CASE WHEN {updated} <> '' THEN ({updated})::timestamp END AS updated
            FROM import_raw WHERE NOT ({blank}) OFFSET 0
        ) AS r
        OFFSET 0
    """  # noqa: S608
    return ddl, source


def _step(what: str, since: float) -> float:
    now = time.perf_counter()
    log.debug("import fast path: %s %.3f s", what, now - since)
    return now


async def attempt(
    conn: Connection, source: IO[bytes], *, dry_run: bool, progress: Progress | None
) -> FastOutcome | None:
    """Import `source` the fast way, or None (with `source` where it was) to fall back."""
    if not enabled or not source.seekable():
        return None
    start = source.tell()
    try:
        outcome = await _attempt(conn, source, dry_run, progress)
    except _NotFast as reason:
        log.info("import fast path not taken: %s", reason)
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if conn.is_closed():
            raise
        log.info("import fast path not taken: %s: %s", type(exc).__name__, exc)
    else:
        stats["taken"] += 1
        log.info("import fast path taken: %d rows", outcome.rows)
        return outcome
    stats["fallback"] += 1
    source.seek(start)
    return None


async def _attempt(
    conn: Connection, source: IO[bytes], dry_run: bool, progress: Progress | None
) -> FastOutcome:
    digest = hashlib.sha256()
    head = await asyncio.to_thread(source.read, HEADER_BYTES)
    digest.update(head)
    header = _read_header(head)
    ddl, query = _sql(header, len(header.cells))
    quotes = _QuoteCheck(header.delimiter)
    lines = 0

    def next_chunk() -> bytes:
        data = source.read(CHUNK_BYTES)
        digest.update(data)
        quotes.feed(data, final=not data)
        return data

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal lines
        data = head[header.body_offset :]
        quotes.feed(data, final=False)
        while data:
            yield data
            lines += data.count(b"\n")
            if progress is not None:
                progress(lines)
            data = await asyncio.to_thread(next_chunk)

    transaction = conn.transaction()
    await transaction.start()
    clock = time.perf_counter()
    try:
        await conn.execute("SET LOCAL datestyle = 'ISO, YMD'")
        await conn.execute("SET LOCAL work_mem = '256MB'")
        await conn.execute(ddl)
        columns = [f"c{i}" for i in range(len(header.cells))]
        status: str = await conn.copy_to_table(
            "import_raw",
            source=chunks(),
            format="csv",
            header=True,
            delimiter=header.delimiter,
            columns=columns,
            force_not_null=columns,
        )
        copied = int(status.rsplit(" ", 1)[-1])
        clock = _step("COPY", clock)
        empty = " AND ".join(f"{c} = ''" for c in columns)
        blank: int = await conn.fetchval(f"SELECT count(*) FROM import_raw WHERE {empty}")  # noqa: S608
        rows = copied - blank
        clock = _step("blank count", clock)
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PRODUCTS_WRITE_LOCK)
        now = await conn.fetchval("SELECT clock_timestamp()")
        before: int = await conn.fetchval("SELECT count(*) FROM products")
        clock = _step("lock and count", clock)
        merged = await conn.execute(merge_into_products(f"({query})"), now)
        clock = _step("MERGE", clock)
        touched = int(merged.rsplit(" ", 1)[-1])
        after: int = await conn.fetchval("SELECT count(*) FROM products")
        if touched > rows:
            raise _NotFast("the MERGE touched more rows than the file has")
        if progress is not None:
            progress(rows)
    except BaseException:
        if not conn.is_closed():
            await transaction.rollback()
        raise
    created = after - before
    outcome = FastOutcome(
        rows=rows,
        created=created,
        updated=touched - created,
        warnings=header.warnings,
        sha256=digest.hexdigest(),
        transaction=transaction,
        header=header.cells,
        positions=header.positions,
    )
    if dry_run:
        await transaction.rollback()
        outcome.transaction = None
    return outcome
