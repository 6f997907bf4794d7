"""The XLSX fast path (typed cells, piece by piece) against the Python path, workbook by workbook.

The same bytes are imported twice: with the fast path enabled (it may take the workbook) and with
it switched off (`fast_xlsx.enabled`). Products, counts and errors must be the same;
`fast_xlsx.stats` tells which path ran. Small pieces (`sheet_pieces.PIECE_BYTES`) make a
workbook of a few hundred rows go through many pieces.
"""

from __future__ import annotations

import io
import random
import re
import zipfile
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

import pytest
from openpyxl import Workbook

from ekimo.container import Container
from ekimo.imports.fast import sheet_pieces
from ekimo.imports.fast import xlsx as fast_xlsx
from ekimo.imports.schemas import ImportOptions
from tests.imports.conftest import (
    HEADER,
    import_both_ways,
    import_by,
    products,
    truncate_catalog,
    xlsx_bytes,
)

CLEAN: list[list[Any]] = [
    ["0001234", "Plain", 19.989999999999998, 2, datetime(2025, 7, 1, 12, 30)],
    ["42", 'Quoted, with "quotes"', 0, 0.125, datetime(2025, 7, 2)],  # midnight: a date
    ["43", "Two\nlines", 5.5, 10, None],
    ["44", "Ünïcødé ✓", 999999999999.99, 3.5, datetime(2024, 2, 29, 23, 59, 59, 500000)],
    ["45", "x" * 255, 746.0700000000001, 516.0, datetime(1999, 12, 31)],
]


@pytest.fixture(autouse=True)
def _fast_path_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_xlsx, "enabled", True)


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sheet_pieces, "PIECE_BYTES", 2048)
    monkeypatch.setattr(sheet_pieces, "FIRST_PIECE_BYTES", 1024)
    monkeypatch.setattr(sheet_pieces, "PIECE_TO_PARTS", 0)


async def _both(
    container: Container, content: bytes, options: ImportOptions | None = None
) -> tuple[str, dict[str, Any], dict[str, tuple[Any, ...]]]:
    return await import_both_ways(fast_xlsx, container, content, "products.xlsx", options)


def _at(header: list[str], rows: list[list[Any]], row: int, column: int) -> bytes:
    """A workbook with `header` on Excel row `row`, from column `column` (1 = A)."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for offset, values in enumerate([header, *rows]):
        for at, value in enumerate(values, start=column):
            sheet.cell(row=row + offset, column=at, value=value)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _shared_strings_workbook(header: list[str], rows: list[list[Any]]) -> bytes:
    """A workbook as Excel writes one: text in a shared strings table, date-times as serial
    numbers with a date format (openpyxl writes text inline)."""
    strings: dict[str, int] = {}

    def cell(ref: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            index = strings.setdefault(value, len(strings))
            return f'<c r="{ref}" t="s"><v>{index}</v></c>'
        if isinstance(value, datetime):
            serial = (value - datetime(1899, 12, 30)).total_seconds() / 86400
            return f'<c r="{ref}" s="1"><v>{serial!r}</v></c>'
        return f'<c r="{ref}"><v>{value!r}</v></c>'

    sheet_rows = "".join(
        f'<row r="{r}">'
        + "".join(cell(f"{'ABCDEFGH'[c]}{r}", v) for c, v in enumerate(values))
        + "</row>"
        for r, values in enumerate([header, *rows], start=1)
    )
    main = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    relation = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{relation}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook {main} xmlns:r="{relation}"><sheets>'
            '<sheet name="Products" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{relation}/worksheet" '
            'Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{relation}/sharedStrings" '
            'Target="sharedStrings.xml"/>'
            f'<Relationship Id="rId3" Type="{relation}/styles" Target="styles.xml"/>'
            "</Relationships>"
        ),
        "xl/styles.xml": (
            f'<styleSheet {main}><cellXfs count="2"><xf numFmtId="0"/>'
            '<xf numFmtId="22" applyNumberFormat="1"/></cellXfs></styleSheet>'
        ),
        "xl/worksheets/sheet1.xml": f"<worksheet {main}><sheetData>{sheet_rows}</sheetData>"
        "</worksheet>",
    }
    parts["xl/sharedStrings.xml"] = (
        f'<sst {main} count="{len(strings)}" uniqueCount="{len(strings)}">'
        + "".join(f'<si><t xml:space="preserve">{escape(s)}</t></si>' for s in strings)
        + "</sst>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _many(count: int, first: int = 1000) -> list[list[Any]]:
    return [
        [str(first + i), f"Product {i}", i + 0.5, i % 7, datetime(2025, 1, 1, i % 24)]
        for i in range(count)
    ]


async def test_clean_workbooks_take_the_fast_path_and_match_the_python_path(
    container: Container, small_pieces: None
) -> None:
    moved = [[r[1], r[2], r[3], r[4], r[0], "red"] for r in CLEAN]
    workbooks = {
        "typed cells": xlsx_bytes(CLEAN),
        "header on C3, other order, an unknown column": _at(
            ["Name", "price", "QUANTITY", "last_updated", "barcode", "colour"], moved, 3, 3
        ),
        "no last_updated column": xlsx_bytes([r[:4] for r in CLEAN], header=HEADER[:4]),
        "a header only": xlsx_bytes([]),
        "shared strings": _shared_strings_workbook(HEADER, CLEAN),
        "many pieces": xlsx_bytes(_many(300)),
        "many pieces, shared strings": _shared_strings_workbook(HEADER, _many(300)),
    }
    for label, content in workbooks.items():
        pieces = fast_xlsx.stats["pieces"]
        path, report, _ = await _both(container, content)
        assert path == "fast", label
        if label.startswith("many pieces"):
            assert fast_xlsx.stats["pieces"] - pieces > 10, label
        assert (report["status"], report["errors"]) == ("applied", []), label
        assert report["format"] == "xlsx"


async def test_fast_path_stored_values(container: Container) -> None:
    await truncate_catalog(container)
    path, report = await import_by(fast_xlsx, container, xlsx_bytes(CLEAN), "p.xlsx", fast=True)
    assert path == "fast"
    assert (report["rows"], report["created"]) == (len(CLEAN), len(CLEAN))
    stored = await products(container)
    assert stored["0001234"]["price"] == "19.99"
    assert stored["0001234"]["quantity"] == "2.000"
    assert stored["0001234"]["last_updated"] == datetime(2025, 7, 1, 12, 30, tzinfo=UTC)
    assert stored["42"]["last_updated"] == datetime(2025, 7, 2, tzinfo=UTC)
    assert stored["44"]["last_updated"].microsecond == 500000
    assert stored["45"]["price"] == "746.07"
    assert stored["43"]["last_updated"] == stored["43"]["updated_at"]  # none: the import's time


async def test_dry_run_re_import_and_changes_on_the_fast_path(
    container: Container, small_pieces: None
) -> None:
    rows = _many(300)
    path, report, _ = await _both(container, xlsx_bytes(rows), ImportOptions(dry_run=True))
    assert (path, report["status"], report["created"]) == ("fast", "validated", 300)
    assert await products(container) == {}
    await import_by(fast_xlsx, container, xlsx_bytes(rows), "p.xlsx", fast=True)
    path, report = await import_by(fast_xlsx, container, xlsx_bytes(rows), "p.xlsx", fast=True)
    assert path == "fast"
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 300)
    changed = [[r[0], r[1], 0.25 if i % 10 == 0 else r[2], *r[3:]] for i, r in enumerate(rows)]
    more = [*changed, *_many(5, first=5000)]
    path, report = await import_by(fast_xlsx, container, xlsx_bytes(more), "p.xlsx", fast=True)
    assert path == "fast"
    assert (report["created"], report["updated"], report["unchanged"]) == (5, 30, 270)
    assert (await products(container))["1010"]["version"] == 2


DIRTY: dict[str, list[list[Any]]] = {
    "negative price": [["1", "A", -1.0, 1, None]],
    "too many decimals": [["1", "A", 1.999, 1, None]],
    "too large": [["1", "A", 1e12, 1, None]],
    "name too long": [["1", "x" * 256, 1, 1, None]],
    "barcode twice": [["1", "A", 1, 1, None], ["1", "B", 2, 2, None]],
    "a boolean": [["1", "A", True, 1, None]],
    "barcode of two lines": [["12\n34", "A", 1, 1, None]],
}
# Fine for the Python path, not the fast path's kind of cell: the same result either way.
UNUSUAL: dict[str, list[list[Any]]] = {
    "barcode stored as a number": [[808080808080, "A", 1.5, 1, None]],
    "price stored as text": [["1", "A", "19.99", 1, None]],
    "name to trim": [["1", " A ", 1, 1, None]],
    "escaped name": [["1", "'=A1", 1, 1, None]],
    "a blank row": [["1", "A", 1, 1, None], [None, None, None, None, None], ["2", "B", 1, 1, None]],
    "date-time as text": [["1", "A", 1, 1, "2025-07-01T12:00:00"]],
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["import", "dry run"])
@pytest.mark.parametrize("on_error", ["reject", "skip"])
async def test_dirty_workbooks_fall_back_with_the_exact_errors(
    container: Container, on_error: str, dry_run: bool
) -> None:
    options = ImportOptions(on_error="skip" if on_error == "skip" else "reject", dry_run=dry_run)
    for label, rows in (DIRTY | UNUSUAL).items():
        good = [["900", "Good", 1.0, 1, None], *rows, ["901", "Good too", 2.0, 2, None]]
        path, report, _ = await _both(container, xlsx_bytes(good), options)
        assert path == "python", label
        assert bool(report["errors"]) == (label in DIRTY), (label, report["errors"])


async def test_a_late_piece_that_falls_back_leaves_nothing_of_the_earlier_ones(
    container: Container, small_pieces: None
) -> None:
    rows = _many(300)
    rows[250][2] = "abc"
    path, report, stored = await _both(container, xlsx_bytes(rows))
    assert path == "python"
    assert report["status"] == "rejected"
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(252, "price")]
    assert stored == {}
    rows[250][2] = 1.5
    rows[280][0] = rows[3][0]  # a barcode twice, pieces apart
    path, report, _ = await _both(container, xlsx_bytes(rows), ImportOptions(on_error="skip"))
    assert path == "python"
    assert (report["created"], report["rejected"]) == (299, 1)
    assert "already appears on row 5" in report["errors"][0]["message"]


async def test_sheets_that_cannot_be_cut_take_the_python_path(
    container: Container, small_pieces: None
) -> None:
    content = xlsx_bytes(_many(50))
    unnumbered = _rewrite_sheet(content, lambda xml: re.sub(rb'(<row) r="\d+"', rb"\1", xml))
    path, report, _ = await _both(container, unnumbered)
    assert (path, report["created"]) == ("python", 50)


def _rewrite_sheet(content: bytes, change: Any) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = change(data)
            target.writestr(item, data)
    return out.getvalue()


async def test_pieces_of_one_row_layout_are_read_without_calamine(
    container: Container, small_pieces: None
) -> None:
    varied = _many(300)
    for at, row in zip((60, 120, 180, 240), (r for r in CLEAN if r[4] is not None), strict=True):
        varied[at] = row  # quotes, unicode, 255 characters, 15 significant digits
    for at, (price, quantity) in enumerate([(100.0, 0.001), (0.1 + 0.2, 0), (0.5, 1e3)], 30):
        varied[at][2:4] = [price, quantity]  # "100.0", "0.30000000000000004": texts to redo
    workbooks = {
        "openpyxl": xlsx_bytes(varied),
        "shared strings": _shared_strings_workbook(HEADER, _many(300)),
        "an unknown column, no last_updated": _at(
            ["barcode", "name", "price", "quantity", "colour"],
            [[*r[:4], "red"] for r in _many(300)],
            1,
            1,
        ),
    }
    for label, content in workbooks.items():
        read = fast_xlsx.stats["layout pieces"]
        path, report, _ = await _both(container, content)
        assert (path, report["created"]) == ("fast", 300), label
        assert fast_xlsx.stats["layout pieces"] - read > 10, label


def _restyle_rows(content: bytes, rows: range) -> bytes:
    """The same workbook with the price cells of `rows` in another style (as Excel does for
    a currency format on some cells): a layout the first row did not show."""

    def change(xml: bytes) -> bytes:
        for row in rows:
            xml = xml.replace(b'<c r="C%d" t="n">' % row, b'<c r="C%d" s="0" t="n">' % row)
        return xml

    return _rewrite_sheet(content, change)


async def test_pieces_unlike_the_first_row_are_read_by_calamine_with_the_same_result(
    container: Container, small_pieces: None
) -> None:
    rows = _many(300)
    rows[120][1] = "Salt & pepper <large>"  # entities in the XML
    rows[160][1] = "Tab\there"
    rows[170][1] = "Back\\slash \\N"  # COPY's escape and its NULL, as plain text
    rows[200][1] = "Escaped _x0041_ text"  # Excel's own escape: calamine's to read
    content = _restyle_rows(xlsx_bytes(rows), range(230, 240))
    read, pieces = fast_xlsx.stats["layout pieces"], fast_xlsx.stats["pieces"]
    path, report, stored = await _both(container, content)
    assert (path, report["created"]) == ("fast", 300)
    by_layout = fast_xlsx.stats["layout pieces"] - read
    assert 0 < by_layout < fast_xlsx.stats["pieces"] - pieces - 1
    assert stored["1120"][0] == "Salt & pepper <large>"


async def test_excel_dates_are_the_same_date_times_as_calamine_gives(
    container: Container, small_pieces: None
) -> None:
    """Serial numbers (fractions of a day) become date-times rounded to the millisecond, half
    away from zero, also past 2185 (where a float interval of milliseconds would drift) and
    before 1900-03-01 (Excel's leap-year quirk, left to calamine)."""
    rng = random.Random(7)
    moments = [
        datetime(2025, 1, 1) + rng.random() * (datetime(2030, 1, 1) - datetime(2025, 1, 1))
        for _ in range(200)
    ]
    moments += [datetime(9000, 12, 31, 23, 59, 59, 999000), datetime(2500, 6, 1, 0, 0, 0, 500)]
    moments += [datetime(2025, 3, 1, 12, 0, 0, 499), datetime(2025, 3, 1, 12, 0, 0, 500)]
    rows = [[str(2000 + i), f"P{i}", 1, 1, m] for i, m in enumerate(moments)]
    for content in (_shared_strings_workbook(HEADER, rows), xlsx_bytes(rows)):
        read = fast_xlsx.stats["layout pieces"]
        path, report, _ = await _both(container, content)
        assert (path, report["created"]) == ("fast", len(rows))
        assert fast_xlsx.stats["layout pieces"] > read
    early = [*rows, ["1", "Early", 1, 1, datetime(1900, 2, 28, 6)]]
    path, report, _ = await _both(container, _shared_strings_workbook(HEADER, early))
    assert (path, report["created"]) == ("fast", len(early))
