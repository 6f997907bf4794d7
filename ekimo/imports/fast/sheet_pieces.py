"""The first worksheet of an .xlsx cut into pieces of whole rows, each parsed on its own.

python-calamine (the fastest reader we measured) parses a whole sheet before it yields a row:
memory grows with the sheet, and nothing else can happen while it parses. Here the sheet's XML
is decompressed as a stream and cut between two rows into pieces of about `PIECE_BYTES`. Each
piece becomes a small uncompressed workbook with the original's other parts (styles, which make
a number a date; shared strings), which calamine parses without holding the GIL. Excel's row and
column numbers are kept: every cut is before a `<row r="…">`, and each piece's sheet says where
its used range starts.

A sheet is cut only where that is plainly safe: unprefixed element names, numbered rows, no
CDATA or comments among the rows (`Cutter.can_cut`). Every piece re-parses the shared strings,
so pieces grow with them.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from posixpath import dirname, join, normpath
from typing import IO, Any

PIECE_BYTES = 2 * 1024 * 1024
# The first piece is small: calamine reads it (and a row layout is learnt from it, see
# `sheet_layout`), and PostgreSQL starts on it early.
FIRST_PIECE_BYTES = 128 * 1024
READ_BYTES = 1024 * 1024
# A piece is at least this many times the parts copied into every piece (shared strings...).
PIECE_TO_PARTS = 4
# Parts read whole to find the first worksheet; bigger ones: the workbook is not cut.
MAX_PART_BYTES = 1024 * 1024

# The few tags read to find the first sheet and to cut; plain patterns, no XML parser needed.
_SHEET_TAG = re.compile(rb"<sheet\s[^>]*>")
_RELATION_ID = re.compile(rb'\s\w+:id="([^"]*)"')
_RELATION_TAG = re.compile(rb"<Relationship\s[^>]*>")
_ATTRIBUTE = re.compile(rb'(\w+)="([^"]*)"')
_DATE_1904 = re.compile(rb'\sdate1904="(?:1|true)"')
_DIMENSION = re.compile(rb"<dimension\b[^>]*>")
_ROW_TAG = re.compile(rb"<row\b[^>]*>")
_NUMBERED = re.compile(rb'\sr="\d+"')
_EMPTY_WORKSHEET = (
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    b"<sheetData/></worksheet>"
)


class Piece:
    """Rows of the sheet: `rows[i]` is Excel row `first_row + i`, its cells from column
    `first_column` (0 = A); calamine's values (str, float, int, bool, datetime...)."""

    def __init__(self, first_row: int, first_column: int, rows: list[list[Any]]) -> None:
        self.first_row = first_row
        self.first_column = first_column
        self.rows = rows


def first_sheet_part(archive: zipfile.ZipFile) -> str | None:
    """The path of the first sheet in the workbook (the one calamine reads as index 0), or
    None when the workbook is not laid out as usual (it is then read whole)."""
    try:
        workbook = _small_part(archive, "xl/workbook.xml")
        relations = _small_part(archive, "xl/_rels/workbook.xml.rels")
    except (KeyError, ValueError):
        return None
    sheet = _SHEET_TAG.search(workbook)
    relation_id = _RELATION_ID.search(sheet.group()) if sheet is not None else None
    if relation_id is None:
        return None
    for tag in _RELATION_TAG.findall(relations):
        found = dict(_ATTRIBUTE.findall(tag))
        if found.get(b"Id") == relation_id.group(1):
            return _part_path(found.get(b"Target", b""))
    return None


def _part_path(target: bytes) -> str:
    """A relationship's target as a path in the archive (relative to xl/, or absolute)."""
    text = target.decode()
    return normpath(text[1:] if text.startswith("/") else join("xl", text))


def _small_part(archive: zipfile.ZipFile, part: str) -> bytes:
    if archive.getinfo(part).file_size > MAX_PART_BYTES:
        raise ValueError(f"{part} is large")
    return archive.read(part)


class Cutter:
    """Cuts a worksheet's XML into small workbooks of whole rows (see the module's docstring).

    cutter = Cutter(archive, first_sheet_part(archive))
    if cutter.can_cut():
        for rows in cutter.pieces(): piece = parse_piece(cutter.workbook(rows))
    """

    def __init__(self, archive: zipfile.ZipFile, sheet: str) -> None:
        self.archive = archive
        self.sheet = sheet
        self.xml = archive.open(sheet)
        self.prefix = b""  # the sheet's XML up to its rows
        self.buffer = b""  # read, not yet cut

    def can_cut(self) -> bool:
        """Reads up to the first row: True when the sheet is plain enough to cut."""
        buffer = b""
        while b"<sheetData>" not in buffer:
            data = self.xml.read(READ_BYTES)
            if not data or len(buffer) > MAX_PART_BYTES:
                self.xml.close()
                return False
            buffer += data
        at = buffer.index(b"<sheetData>") + len(b"<sheetData>")
        first = _ROW_TAG.match(buffer, at)
        if first is None or not _NUMBERED.search(first.group()):
            self.xml.close()
            return False
        # A <dimension> would make calamine size every piece like the whole sheet.
        self.prefix = _DIMENSION.sub(b"", buffer[:at])
        self.buffer = buffer[at:]
        self._copy_parts()
        return True

    def _copy_parts(self) -> None:
        worksheets = dirname(self.sheet)
        self.parts: dict[str, bytes] = {}
        for info in self.archive.infolist():
            name = info.filename
            if name == self.sheet or name.endswith("/") or name.startswith("xl/media/"):
                continue
            if dirname(name) == worksheets and name.endswith(".xml"):
                self.parts[name] = _EMPTY_WORKSHEET  # other sheets: never read here
            else:
                self.parts[name] = self.archive.read(name)
        self.shared_strings = self._shared_strings()
        copied = sum(len(data) for data in self.parts.values())
        self.piece_bytes = max(PIECE_BYTES, PIECE_TO_PARTS * copied)

    def _shared_strings(self) -> bytes | None:
        """The shared strings part, if the workbook has one where Excel puts it."""
        relations = self.parts.get("xl/_rels/workbook.xml.rels", b"")
        for tag in _RELATION_TAG.findall(relations):
            found = dict(_ATTRIBUTE.findall(tag))
            if found.get(b"Type", b"").endswith(b"/sharedStrings"):
                return self.parts.get(_part_path(found.get(b"Target", b"")))
        return None

    def dates_from_1904(self) -> bool:
        """Whether the workbook counts days from 1904 (old Mac Excel), not from 1900."""
        return _DATE_1904.search(self.parts.get("xl/workbook.xml", b"")) is not None

    def pieces(self) -> Iterator[bytes]:
        """The sheet's XML cut between rows (whole `<row>` elements), in order; call after
        `can_cut`."""
        buffer, target = self.buffer, FIRST_PIECE_BYTES
        ended, cutting = False, True
        with self.xml:
            while True:
                while len(buffer) < target and not ended:
                    data = self.xml.read(READ_BYTES)
                    ended = not data
                    buffer += data
                if cutting and (b"<![CDATA[" in buffer or b"<!--" in buffer):
                    cutting = False  # a </row> could be text there: read the rest whole
                end = buffer.find(b"</sheetData>")
                if ended or (end >= 0 and (end <= target or not cutting)):
                    if end < 0:
                        raise ValueError("the sheet's XML ends before </sheetData>")
                    if _ROW_TAG.search(buffer, 0, end):
                        yield buffer[:end]
                    return
                cut = _cut(buffer, target if end < 0 else min(target, end)) if cutting else -1
                if cut < 0:
                    target += self.piece_bytes  # no place to cut yet: take more
                    continue
                yield buffer[:cut]
                buffer = buffer[cut:]
                target = self.piece_bytes

    def workbook(self, rows: bytes) -> io.BytesIO:
        """A workbook of the original's parts whose first sheet is `rows` (from `pieces`)."""
        stored = io.BytesIO()
        with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as piece:
            for name, data in self.parts.items():
                piece.writestr(name, data)
            piece.writestr(self.sheet, self.prefix + rows + b"</sheetData></worksheet>")
        stored.seek(0)
        return stored


def _cut(buffer: bytes, target: int) -> int:
    """Where to cut: after the last `</row>` before `target` that a numbered row follows."""
    limit = target
    for _ in range(8):
        close = buffer.rfind(b"</row>", 0, limit)
        if close < 0:
            return -1
        cut = close + len(b"</row>")
        following = _ROW_TAG.match(buffer, cut)
        if following is not None and _NUMBERED.search(following.group()):
            return cut
        limit = close
    return -1


def parse_piece(workbook: IO[bytes]) -> Piece:
    from python_calamine import CalamineWorkbook

    sheet = CalamineWorkbook.from_filelike(workbook).get_sheet_by_index(0)  # type: ignore[arg-type]
    start = sheet.start
    if start is None:  # an empty piece (rows without cells)
        return Piece(1, 0, [])
    rows: list[list[Any]] = sheet.to_python(skip_empty_area=True)
    return Piece(start[0] + 1, start[1], rows)
