"""Rows of a worksheet read with one regular expression, when every row is laid out alike.

A sheet written by a program (openpyxl, Excel) repeats one row layout: the same cells, with the
same attributes, on every row. `RowLayout.learn` takes that layout from the first data row,
whose kinds calamine has just read (text, number or date-time: a number's kind depends on its
style), and proves it by reading the rest of the first piece both ways. `RowLayout.read` then
reads a piece of raw sheet XML (whole rows, see `sheet_pieces`) faster than calamine can,
and answers None as soon as anything in the piece is not such a row, or is a value
whose reading could differ from calamine's (entities other than the five named ones, `_x00HH_`
escapes, surrounding whitespace, exponents, negative numbers, early dates): the caller then lets
calamine read that piece. So it never guesses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from operator import itemgetter
from typing import Any

from ekimo.imports.validation import float_text

# A cell of the first data row: column letters, row number, attributes, then its content.
_CELL = re.compile(
    rb'<c r="([A-Z]{1,3})([0-9]+)"((?: [a-z]+="[^"<>]*")*)(/>|>((?:[^<]|<(?!/c>))*+)</c>)'
)
_ATTRIBUTE = re.compile(rb' ([a-z]+)="([^"]*)"')
_INLINE_TEXT = re.compile(rb"<is><t>[^<]*</t></is>")
_VALUE = re.compile(rb"<v>[^<]*</v>")
_SHARED_INDEX = re.compile(rb"<v>[0-9]+</v>")
# Shared strings: each entry a single plain <t> (no rich text runs).
_SHARED_ENTRY = re.compile(rb'<si><t(?: xml:space="preserve")?>([^<]*)</t></si>|<si><t/></si>|(\S)')
_SST_START = re.compile(rb"<sst\b[^>]*>")
# Non-negative decimals without exponent, one per line (bytes joined by \n).
_DECIMALS = re.compile(rb"[0-9]+(?:\.[0-9]+)?(?:\n[0-9]+(?:\.[0-9]+)?)*")
# A number that is its own text of 15 significant digits (`validation.float_text`): at most 12
# digits before the point and 3 after, no leading or trailing zero.
_OWN_TEXT = re.compile(rb"(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{0,2}[1-9])?")
_OWN_TEXTS = re.compile(_OWN_TEXT.pattern + rb"(?:\n" + _OWN_TEXT.pattern + rb")*")
_OTHER_ENTITY = re.compile(r"&(?!(?:amp|lt|gt|quot|apos);)")
# ASCII whitespace (calamine trims it from either end of a text), and where it would stand in
# texts joined by "<": plain substring tests, cheaper than a regular expression.
_ASCII_SPACE = " \t\r\n"
_SPACE_AT_AN_END = tuple(f"<{c}" for c in _ASCII_SPACE) + tuple(f"{c}<" for c in _ASCII_SPACE)
# Excel's day 0 (the 1900 system); serials below 61 meet its 1900 leap-year quirk, and from
# 2958466 on the year is past 9999: calamine reads those otherwise, so they are left to it.
EXCEL_EPOCH = datetime(1899, 12, 30)
_FIRST_SERIAL, _LAST_SERIAL = 61.0, 2958465.0
_MS_PER_DAY = 86_400_000.0

FIELDS = ("barcode", "name", "price", "quantity", "last_updated")
_KINDS = {"barcode": "text", "name": "text", "price": "number", "quantity": "number"}


@dataclass
class Columns:
    """A piece's rows a column at a time, with the values calamine gives for them."""

    barcode: list[str]
    name: list[str]
    price: Sequence[float] | list[str]  # floats from calamine, texts from a layout
    quantity: Sequence[float] | list[str]
    last_updated: Sequence[datetime | None] | None  # None: no such column, or excel_ms
    excel_ms: Sequence[int] | None = None  # last_updated as `_moments` gives it


class RowLayout:
    """One row layout of a sheet, and its regular expression (see the module docstring)."""

    def __init__(self, pattern: bytes, fields: list[tuple[str, str]], shared: list[str | None]):
        self.pattern = re.compile(rb"(?:" + pattern + rb")|(\S)")
        self.fields = fields  # (field, kind) in the order of the pattern's groups after r=
        self.shared = shared

    @classmethod
    def learn(
        cls,
        chunk: bytes,
        first_row: int,
        first_column: int,
        positions: dict[str, int],
        calamine_rows: list[list[Any]],
        shared_strings: bytes | None,
    ) -> RowLayout | None:
        """The layout of `chunk`'s data rows, if calamine's `calamine_rows` (the rows after
        the header on `first_row`) read the same through it; else None."""
        if not calamine_rows or b"<!" in chunk or b"<?" in chunk:
            return None
        start = chunk.find(b'<row r="%d"' % (first_row + 1))
        end = chunk.find(b"</row>", start)
        if start < 0 or end < 0:
            return None
        head = re.match(rb'<row r="[0-9]+"[^>]*>', chunk[start:end])
        if head is None:
            return None
        body = chunk[start + head.end() : end]
        letters = {_letters(first_column + at): name for name, at in positions.items()}
        sample = {name: calamine_rows[0][at] for name, at in positions.items()}
        shared = _shared_strings(shared_strings)
        pattern = rb'<row r="([0-9]+)"[^>]*>\s*'
        fields: list[tuple[str, str]] = []
        at = 0
        for cell in _CELL.finditer(body):
            if body[at : cell.start()].strip() or cell.group(2) != b"%d" % (first_row + 1):
                return None
            at = cell.end()
            column, attributes, content = cell.group(1), cell.group(3), cell.group(5)
            name = letters.get(column.decode())
            pattern += b'<c r="' + column + rb'\1"' + re.escape(attributes)
            if name is None:  # a column ekimo does not read: any content, within the cell
                pattern += rb"(?:/>|>(?:[^<]|<(?!/c>))*+</c>)\s*"
                continue
            kind = _kind(name, dict(_ATTRIBUTE.findall(attributes)), content, sample[name])
            if kind is None or (kind == "shared" and shared is None):
                return None
            pattern += {
                "inline": rb"><is><t>([^<]*)</t></is></c>\s*",
                "shared": rb"><v>([0-9]+)</v></c>\s*",
            }.get(kind, rb"><v>([^<]*)</v></c>\s*")
            fields.append((name, kind))
        names = [name for name, _ in fields]
        if body[at:].strip() or sorted(names) != sorted(positions):  # each once
            return None
        layout = cls(pattern + rb"</row>", fields, shared or [])
        proof = layout.read(chunk[start:])
        if proof is None or not _same(proof, calamine_rows, positions):
            return None
        return layout

    def read(self, chunk: bytes) -> Columns | None:
        """`chunk`'s rows, or None when any part of it is not a row of this layout."""
        found = self.pattern.findall(chunk)
        if not found:
            return None
        if any(map(itemgetter(-1), found)):  # text that is not such a row
            return None
        values: dict[str, Any] = {}
        for at, (name, kind) in enumerate(self.fields, start=1):
            value = self._column(kind, tuple(map(itemgetter(at), found)))
            if value is None:
                return None
            values[name] = value
        return Columns(
            barcode=values["barcode"],
            name=values["name"],
            price=values["price"],
            quantity=values["quantity"],
            last_updated=None,
            excel_ms=values.get("last_updated"),
        )

    def _column(self, kind: str, column: tuple[bytes, ...]) -> list[Any] | None:
        if kind == "inline":
            return _texts(column)
        if kind == "shared":
            try:
                texts = [self.shared[int(i)] for i in column]
            except IndexError:
                return None
            return None if None in texts else texts  # type: ignore[return-value]
        joined = b"\n".join(column)
        if _DECIMALS.fullmatch(joined) is None:
            return None
        if kind == "number":
            return _number_texts(joined, column)
        return _moments(list(map(float, column)))


def _kind(
    name: str, attributes: dict[bytes, bytes], content: bytes | None, value: Any
) -> str | None:
    """How the first data row's cell of `name` is written, if calamine read it as expected."""
    if set(attributes) - {b"s", b"t"} or content is None:
        return None
    typed = attributes.get(b"t")
    expected = _KINDS.get(name, "moment")
    if expected == "text" and type(value) is str:
        if typed == b"inlineStr" and _INLINE_TEXT.fullmatch(content):
            return "inline"
        if typed == b"s" and _SHARED_INDEX.fullmatch(content):
            return "shared"
        return None
    if typed not in (None, b"n") or not _VALUE.fullmatch(content):
        return None
    if expected == "number" and type(value) in (float, int):
        return "number"
    if expected == "moment" and type(value) in (datetime, date):
        return "moment"
    return None


def _texts(column: tuple[bytes, ...]) -> list[str] | None:
    """Raw XML text as calamine reads it, or None where the two readings could differ."""
    try:
        joined = b"<".join(column).decode()  # no raw text holds a "<"
    except UnicodeDecodeError:
        return None
    if "_x00" in joined or "\r" in joined:
        return None
    if "&" in joined:
        if _OTHER_ENTITY.search(joined):
            return None
        joined = _unescape(joined)
        if "<" in joined:  # an escaped "<" would break the split below: rare, leave it
            return None
    if _surrounding_space(joined):
        return None
    return joined.split("<")


def _surrounding_space(joined: str) -> bool:
    """Whether a text of `joined` (texts joined by "<") starts or ends with ASCII whitespace."""
    ends = joined[:1] + joined[-1:]
    return any(c in _ASCII_SPACE for c in ends) or any(s in joined for s in _SPACE_AT_AN_END)


def _unescape(text: str) -> str:
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        text = text.replace(entity, char)
    return text.replace("&amp;", "&")


def _number_texts(joined: bytes, column: tuple[bytes, ...]) -> list[str]:
    """Numbers as the Python path's text of them (`validation.float_text` of the float), without the
    float when the XML already holds that text (most do: 19.99, 516)."""
    if _OWN_TEXTS.fullmatch(joined):
        return joined.decode().split("\n")
    own = _OWN_TEXT.fullmatch
    return [raw.decode() if own(raw) else float_text(float(raw)) for raw in column]


def _moments(serials: list[float]) -> list[int] | None:
    """Excel date-times as calamine computes them, in milliseconds since `EXCEL_EPOCH`: the
    serial times a day's milliseconds, rounded half away from zero (adding 0.5 is exact here:
    the products are positive and below 2**48). No datetime objects: PostgreSQL builds them."""
    if min(serials) < _FIRST_SERIAL or max(serials) >= _LAST_SERIAL:
        return None
    return list(map(int, map((0.5).__add__, map(_MS_PER_DAY.__mul__, serials))))


def moment(excel_ms: int) -> datetime:
    """The date-time of milliseconds from `_moments` (PostgreSQL's `EXCEL_MOMENT` in Python)."""
    return EXCEL_EPOCH + timedelta(milliseconds=excel_ms)


def _shared_strings(part: bytes | None) -> list[str | None] | None:
    """The shared strings, None for an entry whose reading could differ from calamine's; None
    when the table is not a plain list of single <t> entries."""
    if part is None:
        return None
    start = _SST_START.search(part)
    end = part.rfind(b"</sst>")
    if start is None or end < 0:
        return None
    entries: list[str | None] = []
    for raw, stray in _SHARED_ENTRY.findall(part, start.end(), end):
        if stray:
            return None
        texts = _texts((raw,))  # None where surrounding spaces make the readings differ
        entries.append(None if texts is None else texts[0])
    return entries


def _letters(column: int) -> str:
    """Excel's letters of a 0-based column number: 0 → A, 26 → AA."""
    letters = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _same(columns: Columns, rows: list[list[Any]], positions: dict[str, int]) -> bool:
    """Whether `columns` holds exactly calamine's `rows`: the same texts, the same numbers (as
    their text), the same date-times (a date at midnight as a date-time)."""
    for name in positions:
        theirs = [row[positions[name]] for row in rows]
        ours: list[Any] = list(getattr(columns, name) or ())
        if name == "last_updated":
            ours = list(map(moment, columns.excel_ms or ()))
            if not all(type(v) in (datetime, date) for v in theirs):
                return False
            theirs = [datetime(v.year, v.month, v.day) if type(v) is date else v for v in theirs]
        elif name in ("price", "quantity"):
            if not all(type(v) in (float, int) for v in theirs):
                return False
            theirs = [float_text(float(v)) for v in theirs]
        if ours != theirs or list(map(type, ours)) != list(map(type, theirs)):
            return False
    return True
