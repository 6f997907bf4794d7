"""The CSV fast path (PostgreSQL parses and validates) against the Python path, file by file.

The same bytes are imported twice: with the fast path enabled (it may take the file) and with
it switched off (`fast_csv.enabled`). Products, counts and errors must be the same;
`fast_csv.stats` tells which path ran.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from ekimo.container import Container
from ekimo.imports.fast import csv as fast_csv
from ekimo.imports.schemas import ImportOptions
from ekimo.imports.service import ImportService
from tests.imports.conftest import (
    csv_bytes,
    import_both_ways,
    import_by,
    products,
    truncate_catalog,
)


class _OneWay(io.RawIOBase):
    """A stream that cannot seek (like standard input): the fast path steps aside."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@pytest.fixture(autouse=True)
def _fast_path_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_csv, "enabled", True)


async def _truncate(container: Container) -> None:
    await truncate_catalog(container)


async def _import(
    container: Container, content: bytes, *, fast: bool, options: ImportOptions | None = None
) -> tuple[str, dict[str, Any]]:
    """(which path ran, the report as a dict without timings and ids)."""
    return await import_by(fast_csv, container, content, "products.csv", fast=fast, options=options)


async def _both(
    container: Container, content: bytes, options: ImportOptions | None = None
) -> tuple[str, dict[str, Any], dict[str, tuple[Any, ...]]]:
    """Import with each path on an empty catalog; the same outcome; (path taken, report, rows)."""
    return await import_both_ways(fast_csv, container, content, "products.csv", options)


CLEAN = [
    ["0001234", "Plain", "19.99", "2", "2025-07-01T12:00:00"],
    ["42", 'Quoted, with "quotes"', "0", "0.125", "2025-07-01 23:59:59"],
    ["43", "Two\nlines", "5.5", "10", ""],
    ["44", "'=SUM(A1)", "1000000", "3.000", "2024-02-29T00:00:00"],
    ["45", "Ünïcødé ✓", "0.10", "999999999999", "1999-12-31T00:00:00"],
    ["0", "'", "12.30", "7", "2025-01-01T00:00:00"],
]


async def test_clean_files_take_the_fast_path_and_match_the_python_path(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    header = ["Name", "price", "QUANTITY", "last_updated", "barcode", "colour"]
    moved = [[r[1], r[2], r[3], r[4], r[0], "red"] for r in CLEAN]
    files = {
        "comma, CRLF": csv_bytes(CLEAN),
        "BOM, LF, other order, unknown column": b"\xef\xbb\xbf"
        + csv_bytes(moved, header=header).replace(b"\r\n", b"\n"),
        "tab": csv_bytes(CLEAN, delimiter="\t"),
        "semicolon, decimal commas": csv_bytes(
            [[r[0], r[1], r[2].replace(".", ","), r[3].replace(".", ","), r[4]] for r in CLEAN],
            delimiter=";",
        ),
        "an all-empty record": csv_bytes([*CLEAN[:2], ["", "", "", "", ""], *CLEAN[2:]]),
        "no last_updated column": csv_bytes(
            [r[:4] for r in CLEAN[:2]], header=["barcode", "name", "price", "quantity"]
        ),
    }
    for label, content in files.items():
        with caplog.at_level(logging.INFO, logger="ekimo.imports.fast.csv"):
            caplog.clear()
            path, report, _ = await _both(container, content)
        assert path == "fast", (label, caplog.text)
        assert "fast path taken" in caplog.text
        assert report["status"] == "applied"
        assert report["errors"] == []
    # Re-importing the same file through the fast path changes nothing.
    await _truncate(container)
    content = files["comma, CRLF"]
    await _import(container, content, fast=True)
    path, report = await _import(container, content, fast=True)
    assert path == "fast"
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, len(CLEAN))


async def test_fast_path_stored_values(container: Container) -> None:
    await _truncate(container)
    path, report = await _import(container, csv_bytes(CLEAN), fast=True)
    assert path == "fast"
    assert (report["rows"], report["created"]) == (len(CLEAN), len(CLEAN))
    stored = await products(container)
    assert stored["0001234"]["price"] == "19.99"
    assert stored["42"]["name"] == 'Quoted, with "quotes"'
    assert stored["43"]["name"] == "Two\nlines"
    assert stored["44"]["name"] == "=SUM(A1)"
    assert stored["44"]["quantity"] == "3.000"
    assert stored["0"]["name"] == "'"
    assert stored["0001234"]["last_updated"].isoformat() == "2025-07-01T12:00:00+00:00"


async def test_dry_run_and_skip_on_the_fast_path(container: Container) -> None:
    content = csv_bytes(CLEAN)
    path, report, _ = await _both(container, content, ImportOptions(dry_run=True))
    assert (path, report["status"], report["created"]) == ("fast", "validated", len(CLEAN))
    assert await products(container) == {}
    path, report, _ = await _both(container, content, ImportOptions(on_error="skip"))
    assert (path, report["status"]) == ("fast", "applied")


DIRTY = {
    "bad price": [["1", "A", "abc", "1", ""]],
    "negative price": [["1", "A", "-1", "1", ""]],
    "too many decimals": [["1", "A", "1.999", "1", ""]],
    "month 13": [["1", "A", "1", "1", "2025-13-01T00:00:00"]],
    "hour 24": [["1", "A", "1", "1", "2025-07-01T24:00:00"]],
    "second 60": [["1", "A", "1", "1", "2025-07-01T12:00:60"]],
    "barcode in scientific notation": [["8.08081E+11", "A", "1", "1", ""]],
    "barcode too long": [["123456789012345", "A", "1", "1", ""]],
    "barcode twice": [["1", "A", "1", "1", ""], ["2", "B", "1", "1", ""], ["1", "C", "2", "2", ""]],
    "name missing": [["1", "  ", "1", "1", ""]],
    "name too long": [["1", "x" * 256, "1", "1", ""]],
    "NaN": [["1", "A", "NaN", "1", ""]],
    "Infinity": [["1", "A", "1", "Infinity", ""]],
    "too large": [["1", "A", "1000000000000", "1", ""]],
}
# Valid, but not spelled the fast path's way: the Python path imports them without an error.
ODDLY_SPELLED = {
    "spaces around values": [[" 1 ", " A\t", " 1.5 ", "\u00a02 ", " 2025-07-01T12:00:00 "]],
    "other number spellings": [["1", "A", "1.50E+2", "+007.5", ""]],
    "zone and fraction": [["1", "A", "1", "1", "2025-07-01T12:00:00.5+02:00"]],
    "date only": [["1", "A", "1", "1", "2025-07-01"]],
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["import", "dry run"])
@pytest.mark.parametrize("on_error", ["reject", "skip"])
async def test_dirty_files_fall_back_with_the_exact_errors(
    container: Container, on_error: str, dry_run: bool
) -> None:
    options = ImportOptions(on_error="skip" if on_error == "skip" else "reject", dry_run=dry_run)
    for label, rows in DIRTY.items():
        good = [["900", "Good", "1", "1", ""], *rows, ["901", "Good too", "2", "2", ""]]
        path, report, _ = await _both(container, csv_bytes(good), options)
        assert path == "python", label
        assert report["errors"], label


async def test_oddly_spelled_valid_rows_fall_back_and_import_without_errors(
    container: Container,
) -> None:
    for label, rows in ODDLY_SPELLED.items():
        good = [["900", "Good", "1", "1", ""], *rows, ["901", "Good too", "2", "2", ""]]
        path, report, stored = await _both(container, csv_bytes(good))
        assert path == "python", label
        assert report["errors"] == [], label
        assert (report["status"], report["rows"], report["rejected"]) == ("applied", 3, 0), label
        assert {"1", "900", "901"} <= stored.keys(), label


RAW_DIRTY = {
    "blank line": b"barcode,name,price,quantity\n1,A,1,1\n\n2,B,1,1\n",
    "ragged row": b"barcode,name,price,quantity\n1,A,1,1\n2,B,1\n3,C,1,1,extra\n",
    "quote inside a field": b'barcode,name,price,quantity\n1,5" screen,1,1\n2,B,1,1\n',
    "text after a closing quote": b'barcode,name,price,quantity\n1,"A"x,1,1\n2,"B",1,1\n',
    "unterminated quote": b'barcode,name,price,quantity\n1,"A,1,1\n2,B,1,1\n',
    "not UTF-8": b"barcode,name,price,quantity\n1,caf\xe9,1,1\n",
    "NUL byte": b"barcode,name,price,quantity\n1,A\x00,1,1\n",
    "end-of-data marker": b"barcode,name,price,quantity\n1,A,1,1\n\\.\n2,B,1,1\n",
    "bare CR inside": b"barcode,name,price,quantity\n1,A,1,1\r2,B,1,1\n",
    "missing column": b"barcode,name,price\n1,A,1\n",
    "empty file": b"",
    "UTF-16": "barcode,name,price,quantity\n1,A,1,1\n".encode("utf-16"),
}


async def test_malformed_files_fall_back(container: Container) -> None:
    for label, content in RAW_DIRTY.items():
        path, _, _ = await _both(container, content)
        assert path == "python", label


async def test_a_stream_that_cannot_seek_takes_the_python_path(container: Container) -> None:
    before = fast_csv.stats["taken"]
    report = await ImportService(container).run(
        io.BufferedReader(_OneWay(csv_bytes(CLEAN))), "products.csv"
    )
    assert (report.status, report.created) == ("applied", len(CLEAN))
    assert fast_csv.stats["taken"] == before


async def test_quotes_across_chunk_boundaries(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fast_csv, "CHUNK_BYTES", 7)
    monkeypatch.setattr(fast_csv, "HEADER_BYTES", 60)
    rows = [[str(i), f'Name "{i}", x\ny', "1.25", "2", ""] for i in range(1, 40)]
    path, report, stored = await _both(container, csv_bytes(rows))
    assert path == "fast"
    assert stored["7"][0] == 'Name "7", x\ny'
    assert report["created"] == 39
    bad = csv_bytes(rows).replace(b'"Name ""7""', b'"Name ""7"x"')
    path, _, _ = await _both(container, bad)
    assert path == "python"


def _many(count: int, first: int = 1000) -> list[list[str]]:
    return [
        [str(first + i), f"Product {i} with a name long enough to fill pages", f"{i}.5", "1", ""]
        for i in range(count)
    ]


async def test_thousands_of_rows_and_a_re_import_with_changes(container: Container) -> None:
    rows = _many(3000)
    path, report, stored = await _both(container, csv_bytes(rows))
    assert path == "fast"
    assert (report["created"], report["updated"]) == (3000, 0)
    assert stored["3999"][0] == "Product 2999 with a name long enough to fill pages"
    changed = [[r[0], r[1], "0.25" if i % 10 == 0 else r[2], *r[3:]] for i, r in enumerate(rows)]
    path, report = await _import(container, csv_bytes(changed), fast=True)
    assert path == "fast"
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 300, 2700)


async def test_a_barcode_twice_far_apart_falls_back_and_is_reported(container: Container) -> None:
    rows = _many(2000)
    rows[1900][0] = rows[5][0]
    for on_error in ("reject", "skip"):
        path, report, _ = await _both(container, csv_bytes(rows), ImportOptions(on_error=on_error))
        assert path == "python"
        assert report["errors"][0]["row"] == 1902
        assert "already appears on row 7" in report["errors"][0]["message"]


async def test_a_value_only_the_checks_refuse_writes_nothing(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    # 1.999 casts to numeric, so the MERGE succeeds; the helper's checks refuse it.
    rows = _many(2000)
    rows[1500][2] = "1.999"
    with caplog.at_level(logging.INFO, logger="ekimo.imports.fast.csv"):
        path, report, stored = await _both(container, csv_bytes(rows))
    assert "1 rows not in the fast path's spelling" in caplog.text
    assert path == "python"
    assert report["status"] == "rejected"
    assert report["errors"][0]["row"] == 1502
    assert stored == {}


async def test_a_fallback_mid_file_reads_the_file_again_from_its_start(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks: COPY refuses the ragged row while the file is still being read; the
    # Python path must then get the whole file, not what a late read left of it.
    monkeypatch.setattr(fast_csv, "CHUNK_BYTES", 256)
    rows = _many(3000)
    content = csv_bytes(rows).replace(b"1010,Product 10", b"1010,Product,10", 1)
    for _ in range(5):
        path, report, _ = await _both(container, content, ImportOptions(on_error="skip"))
        assert path == "python"
        assert (report["rows"], report["created"], report["rejected"]) == (3000, 2999, 1)


def test_the_written_out_spaces_are_what_str_strip_removes() -> None:
    assert tuple(c for c in range(0x110000) if chr(c).isspace()) == fast_csv.SPACES
