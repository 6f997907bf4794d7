"""Readers: a CSV or XLSX file as a header and a stream of rows (lists of strings).

Everything a user can get wrong about the file as a whole raises `FileProblem` with the HTTP
status to answer (400 wrong extension, 413 too large, 422 unreadable) and a message that says
what to fix.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from itertools import islice
from pathlib import Path
from typing import IO, Any

from ekimo.imports.errors import FileProblem
from ekimo.imports.schemas import Format
from ekimo.imports.validation import float_text

CSV_DELIMITERS = (",", ";", "\t")
# An .xlsx is a zip of XML; real sheets expand roughly 5 to 30 times.
XLSX_MAX_RATIO = 100
XLSX_MAX_UNCOMPRESSED = 2 * 1024 * 1024 * 1024
XLSX_RATIO_FLOOR = 64 * 1024 * 1024
SNIFF_BYTES = 64 * 1024


def file_format(filename: str) -> Format:
    suffix = Path(filename).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".xlsx":
        return "xlsx"
    shown = suffix or "no extension"
    raise FileProblem(400, f"unsupported file type ({shown}): upload a .csv or .xlsx file")


class HashingReader(io.RawIOBase):
    """Wraps a binary stream, computing its SHA-256 and size as it is read."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.check_nul = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha256.update(data)
        self.size += n
        if self.check_nul and b"\x00" in data:
            raise FileProblem(
                422,
                "the file contains binary data (NUL bytes), not CSV text: export the "
                "sheet as CSV UTF-8 (or upload the .xlsx itself)",
            )
        return n


def sha256_of(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(1024 * 1024):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


class CsvSource:
    """Streams a CSV file: encoding from the BOM, delimiter from the header line."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.hashing = HashingReader(raw)
        self.buffered = io.BufferedReader(self.hashing, buffer_size=SNIFF_BYTES)
        head = self.buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            self.encoding = "utf-16"
        else:
            self.encoding = "utf-8-sig"
            self.hashing.check_nul = True
            if b"\x00" in head:
                raise FileProblem(
                    422,
                    "the file contains binary data (NUL bytes), not CSV text: export the "
                    "sheet as CSV UTF-8 (or upload the .xlsx itself)",
                )
        self.text = io.TextIOWrapper(self.buffered, encoding=self.encoding, newline="")
        self.delimiter = ","
        self.line_no = 0

    def header(self) -> list[str]:
        """The first line, which also decides the delimiter."""
        try:
            first = self.text.readline()
        except UnicodeDecodeError:
            raise self._not_utf8(1) from None
        if not first.strip():
            raise FileProblem(422, "the file is empty: the first line must be the header")
        counts = {d: first.count(d) for d in CSV_DELIMITERS}
        self.delimiter = max(CSV_DELIMITERS, key=lambda d: counts[d])
        return next(csv.reader([first], delimiter=self.delimiter))

    def batches(self, size: int) -> Iterator[list[list[str]]]:
        """The records after the header, `size` at a time; call after reading the header."""
        reader = csv.reader(self.text, delimiter=self.delimiter, strict=False)
        while True:
            try:
                batch = list(islice(reader, size))
            except UnicodeDecodeError:
                raise self._not_utf8(reader.line_num + 2) from None
            except csv.Error as exc:
                raise FileProblem(
                    422, f"line {reader.line_num + 1}: malformed CSV ({exc})"
                ) from None
            if not batch:
                return
            yield batch

    def _not_utf8(self, approximate_line: int) -> FileProblem:
        where = f"around line {approximate_line}"
        line = self._bad_line()
        if line is not None:
            where = f"on line {line}"
        return FileProblem(
            422,
            f"the file is not valid UTF-8 text ({where}): in Excel choose "
            '"Save As" > "CSV UTF-8 (Comma delimited)" and upload that file',
        )

    def _bad_line(self) -> int | None:
        raw = self.hashing.raw
        if not raw.seekable():
            return None
        raw.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        line = 1
        while chunk := raw.read(1024 * 1024):
            for piece in chunk.splitlines(keepends=True):
                try:
                    decoder.decode(piece)
                except UnicodeDecodeError:
                    return line
                if piece.endswith((b"\n", b"\r")):
                    line += 1
        return None

    @property
    def sha256(self) -> str:
        return self.hashing.sha256.hexdigest()


def check_zip(stream: IO[bytes], max_bytes: int) -> None:
    """An .xlsx must be a zip whose expanded size is in proportion to its own (no zip bomb)."""
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise FileProblem(
            422, "the file is not an Excel workbook (.xlsx is a zip archive and this is not one)"
        ) from None
    finally:
        stream.seek(0)
    limit = max(XLSX_RATIO_FLOOR, min(XLSX_MAX_RATIO * size, XLSX_MAX_UNCOMPRESSED))
    limit = max(limit, max_bytes)
    if expanded > limit:
        raise FileProblem(
            413,
            f"the workbook expands to {expanded // (1024 * 1024)} MB from "
            f"{max(size // 1024, 1)} KB: refusing it as a likely zip bomb; save it again "
            "in Excel or upload it as CSV",
        )


def _bool_text(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def _blank(_: object) -> str:
    return ""


# Cell text by the exact type python-calamine gives: one dict lookup per cell, no if-chain.
_CELL_TEXT: dict[type, Callable[[Any], str]] = {
    str: str,
    float: float_text,
    int: str,
    bool: _bool_text,
    datetime: datetime.isoformat,
    date: date.isoformat,
    time: str,
    timedelta: str,
    type(None): _blank,
}


def _cell_text(value: object) -> str:
    convert = _CELL_TEXT.get(type(value))
    if convert is None:  # a subclass: the first type it is an instance of (datetime before date)
        convert = next((f for t, f in _CELL_TEXT.items() if isinstance(value, t)), str)
    return convert(value)


class XlsxSource:
    """The first worksheet of a workbook, read with python-calamine."""

    def __init__(self, stream: IO[bytes], max_bytes: int) -> None:
        check_zip(stream, max_bytes)
        self.sha256 = sha256_of(stream)
        from python_calamine import CalamineWorkbook

        try:
            workbook = CalamineWorkbook.from_filelike(stream)  # type: ignore[arg-type]
            names = workbook.sheet_names
            if not names:
                raise FileProblem(422, "the workbook has no worksheet")
            self.sheet = workbook.get_sheet_by_index(0)
        except FileProblem:
            raise
        except Exception as exc:
            raise FileProblem(422, f"the workbook cannot be read: {exc}") from None
        # iter_rows() starts at Excel's row 1 even when the used range starts lower (it yields
        # the empty rows above it), so the row numbers count from 1.
        self.first_row = 1
        self._rows = iter(self.sheet.iter_rows())

    def header(self) -> list[str] | None:
        """The first non-blank row; `first_row` becomes its Excel row number."""
        try:
            for values in self._rows:
                cells = [_cell_text(v) for v in values]
                if any(c.strip() for c in cells):
                    return cells
                self.first_row += 1
        except Exception as exc:
            raise FileProblem(422, f"the workbook cannot be read: {exc}") from None
        return None

    def batches(self, size: int) -> Iterator[list[list[str]]]:
        rows = self._rows
        text, known = _cell_text, _CELL_TEXT.get
        while True:
            try:
                batch = [
                    [v if type(v) is str else (known(type(v)) or text)(v) for v in values]
                    for values in islice(rows, size)
                ]
            except Exception as exc:
                raise FileProblem(422, f"the workbook cannot be read: {exc}") from None
            if not batch:
                return
            yield batch
