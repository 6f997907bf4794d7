"""Product import through the HTTP API (PUT /products), the CLI and the service itself."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from openpyxl import Workbook

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.imports.schemas import ImportOptions
from ekimo.imports.service import ImportService
from ekimo.settings import Settings
from tests.conftest import ROOT, run_cli, serve
from tests.imports.conftest import (
    HEADER,
    csv_bytes,
    imports,
    products,
    upload,
    write,
    xlsx_bytes,
)

GOOD = [
    ["0001234", "Widget", "19.99", "3", "2025-07-01T12:00:00"],
    ["808080808080", "Gadget, large", "0", "1.5", "2025-07-01T12:00:00+02:00"],
]


async def test_what_an_import_writes_waits_for_the_sync_and_nothing_else(
    client: httpx.AsyncClient, headers: dict[str, str], container: Container
) -> None:
    for name, content in (
        ("products.csv", csv_bytes(GOOD)),
        ("products.xlsx", xlsx_bytes(GOOD)),
    ):
        async with container.engine.begin() as conn:
            await conn.exec_driver_sql("TRUNCATE products, pending_products")
        assert (await upload(client, headers, content, name)).status_code == 200
        created = await products(container)
        assert {b: (r["version"], r["synced_version"]) for b, r in created.items()} == {
            "0001234": (1, 0),
            "808080808080": (1, 0),
        }, name
        # The external API acknowledges both; then a file changes one of them.
        async with container.engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM pending_products")
        changed = [["0001234", "Widget", "18.99", "3", "2025-07-02T12:00:00"], GOOD[1]]
        assert (await upload(client, headers, csv_bytes(changed))).status_code == 200
        stored = await products(container)
        assert stored["0001234"]["version"] == 2
        assert stored["0001234"]["synced_version"] == 1  # pending, acknowledged at 1
        assert stored["808080808080"]["synced_version"] == 1  # unchanged: not pending
        async with container.engine.connect() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT barcode, version, synced_version FROM pending_products"
            )
            assert rows.all() == [("0001234", 2, 1)], name


async def test_csv_import_creates_then_unchanged_then_updates(
    client: httpx.AsyncClient, headers: dict[str, str], container: Container
) -> None:
    response = await upload(client, headers, csv_bytes(GOOD))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "applied"
    assert (body["rows"], body["created"], body["updated"], body["unchanged"]) == (2, 2, 0, 0)
    assert body["import_id"] is not None
    assert body["format"] == "csv"
    stored = await products(container)
    assert stored["0001234"]["price"] == "19.99"
    assert stored["0001234"]["version"] == 1
    assert stored["0001234"]["synced_version"] == 0
    assert stored["808080808080"]["name"] == "Gadget, large"
    assert stored["808080808080"]["last_updated"] == datetime(2025, 7, 1, 10, tzinfo=UTC)
    assert stored["0001234"]["last_updated"] == datetime(2025, 7, 1, 12, tzinfo=UTC)

    again = await upload(client, headers, csv_bytes(GOOD))
    assert again.json()["unchanged"] == 2
    assert again.json()["updated"] == 0
    assert await products(container) == stored

    changed = [["0001234", "Widget", "19.990", "4", "2025-07-01T12:00:00"], GOOD[1]]
    third = (await upload(client, headers, csv_bytes(changed))).json()
    assert (third["created"], third["updated"], third["unchanged"]) == (0, 1, 1)
    after = await products(container)
    assert after["0001234"]["version"] == 2
    assert after["0001234"]["quantity"] == "4.000"
    assert after["0001234"]["updated_at"] > stored["0001234"]["updated_at"]
    assert after["808080808080"] == stored["808080808080"]
    recorded = await imports(container)
    assert [r["status"] for r in recorded] == ["applied"] * 3
    assert len(recorded[0]["sha256"]) == 64


async def test_row_errors_reject_nothing_written_and_skip(
    client: httpx.AsyncClient, headers: dict[str, str], container: Container
) -> None:
    rows = [
        ["8.08081E+11", "Sci", "1", "1", ""],
        ["12345678901234567", "Long", "1", "1", ""],
        ["111", "", "1", "1", ""],
        ["112", "Neg", "-1", "1", ""],
        ["113", "Many", "1.999", "1", ""],
        ["114", "NaN", "NaN", "1", ""],
        ["115", "Inf", "1", "inf", ""],
        ["116", "Huge", "1e20", "1", ""],
        ["117", "Date", "1", "1", "yesterday"],
        ["118", "Ok", "2", "2", ""],
        ["118", "Dup", "3", "3", ""],
        ["", "", "", "", ""],
        ["119", "'=SUM(A1)", "1E2", "0007.5", ""],
    ]
    rejected = await upload(client, headers, csv_bytes(rows))
    assert rejected.status_code == 422
    assert rejected.headers["content-type"].startswith("application/problem+json")
    body = rejected.json()
    assert body["status"] == 422
    assert body["import_status"] == "rejected"
    assert body["rejected"] == 10
    by_row = {(e["row"], e["column"]): e["message"] for e in body["errors"]}
    assert "digits were lost" in by_row[(2, "barcode")]
    assert "Text" in by_row[(2, "barcode")]
    assert "at most 14" in by_row[(3, "barcode")]
    assert (4, "name") in by_row
    assert (5, "price") in by_row
    assert (6, "price") in by_row
    assert (7, "price") in by_row
    assert (8, "quantity") in by_row
    assert (9, "price") in by_row
    assert (10, "last_updated") in by_row
    assert "row 11" in by_row[(12, "barcode")]
    assert await products(container) == {}

    skipped = await upload(client, headers, csv_bytes(rows), on_error="skip")
    assert skipped.status_code == 200, skipped.text
    body = skipped.json()
    assert (body["created"], body["rejected"], body["rows"]) == (2, 10, 12)
    stored = await products(container)
    assert stored["118"]["name"] == "Ok"
    assert stored["119"]["name"] == "=SUM(A1)"
    assert stored["119"]["price"] == "100.00"
    assert stored["119"]["quantity"] == "7.500"
    statuses = [r["status"] for r in await imports(container)]
    assert statuses == ["rejected", "applied"]


async def test_dry_run_counts_and_writes_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], container: Container
) -> None:
    response = await upload(client, headers, csv_bytes(GOOD), dry_run="true")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "validated"
    assert body["created"] == 2
    assert body["dry_run"] is True
    assert await products(container) == {}
    assert [r["status"] for r in await imports(container)] == ["validated"]


async def test_headers_delimiters_encodings(
    client: httpx.AsyncClient, headers: dict[str, str], container: Container
) -> None:
    header = [" Quantity ", "NAME", "Barcode", "Price", "colour"]
    semicolon = csv_bytes([["1,5", "Semi", "201", "19,99", "red"]], delimiter=";", header=header)
    body = (await upload(client, headers, semicolon)).json()
    assert body["created"] == 1
    assert body["warnings"] == ["unknown column ignored: colour"]
    tab = csv_bytes([["2", "Tab", "202", "1.25", "x"]], delimiter="\t", header=header)
    assert (await upload(client, headers, b"\xef\xbb\xbf" + tab)).json()["created"] == 1
    utf16 = "barcode,name,price,quantity\n203,Über,1,1\n".encode("utf-16")
    assert (await upload(client, headers, utf16)).json()["created"] == 1
    stored = await products(container)
    assert stored["201"]["price"] == "19.99"
    assert stored["201"]["quantity"] == "1.500"
    assert stored["203"]["name"] == "Über"

    missing = await upload(client, headers, b"barcode,name,quantity\n1,a,1\n")
    assert missing.status_code == 422
    assert "price" in missing.json()["detail"]
    latin1 = "barcode,name,price,quantity\n1,a,1,1\n2,Caf\xe9,1,1\n".encode("latin-1")
    bad = await upload(client, headers, latin1)
    assert bad.status_code == 422
    assert "line 3" in bad.json()["detail"]
    assert "CSV UTF-8" in bad.json()["detail"]
    binary = await upload(client, headers, b"barcode,name\x00\x01\x02" * 10)
    assert binary.status_code == 422
    assert "binary" in binary.json()["detail"]
    other = await upload(client, headers, b"x", filename="products.txt")
    assert other.status_code == 400
    assert ".csv or .xlsx" in other.json()["detail"]


async def test_xlsx_typed_cells(
    client: httpx.AsyncClient, headers: dict[str, str], container: Container
) -> None:
    rows: list[list[Any]] = [
        [808080808080, "Typed", 19.989999999999998, 3, datetime(2025, 7, 1, 12, 30)],
        [None, None, None, None, None],
        ["0042", "Formula", "=1+1", 2.5, "2025-07-02T00:00:00Z"],
    ]
    content = xlsx_bytes(rows)
    # openpyxl writes no cached value for a formula; give it one as Excel would.
    content = _with_cached_value(content, "=1+1", "2")
    response = await upload(client, headers, content, filename="p.xlsx")
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 2
    assert response.json()["format"] == "xlsx"
    stored = await products(container)
    assert stored["808080808080"]["price"] == "19.99"
    assert stored["808080808080"]["last_updated"] == datetime(2025, 7, 1, 12, 30, tzinfo=UTC)
    assert stored["0042"]["price"] == "2.00"

    bad = xlsx_bytes([["1", "x", "abc", 1]])
    errors = (await upload(client, headers, bad, filename="p.xlsx")).json()["errors"]
    assert errors[0]["row"] == 2
    assert errors[0]["column"] == "price"

    not_zip = await upload(client, headers, b"barcode,name\n", filename="p.xlsx")
    assert not_zip.status_code == 422
    assert "zip" in not_zip.json()["detail"]
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (200 * 1024 * 1024))
    bombed = await upload(client, headers, bomb.getvalue(), filename="bomb.xlsx")
    assert bombed.status_code == 413
    assert "zip bomb" in bombed.json()["detail"]


async def test_xlsx_row_numbers_are_excels_when_the_sheet_starts_lower(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    # The header on row 3, from column B: rows 1-2 and column A are empty.
    for offset, values in enumerate([HEADER, ["1", "Fine", 1, 1], ["2", "Bad", "abc", 1]]):
        for column, value in enumerate(values, start=2):
            sheet.cell(row=3 + offset, column=column, value=value)
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = await upload(client, headers, buffer.getvalue(), filename="lower.xlsx")
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [(e["row"], e["column"]) for e in errors] == [(5, "price")]


def _with_cached_value(content: bytes, formula: str, value: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.startswith("xl/worksheets/"):
                data = data.replace(
                    f"<f>{formula[1:]}</f><v></v>".encode(),
                    f"<f>{formula[1:]}</f><v>{value}</v>".encode(),
                ).replace(
                    f"<f>{formula[1:]}</f>".encode() + b"<v />",
                    f"<f>{formula[1:]}</f><v>{value}</v>".encode(),
                )
                if f"<v>{value}</v>".encode() not in data:
                    data = data.replace(
                        f"<f>{formula[1:]}</f>".encode(),
                        f"<f>{formula[1:]}</f><v>{value}</v>".encode(),
                    )
            target.writestr(item, data)
    return out.getvalue()


async def test_upload_over_the_limit_is_413(settings: Settings, headers: dict[str, str]) -> None:
    small = settings.with_values(max_upload_mb=1)
    async with serve(create_app(Container(small))) as client:
        big = csv_bytes([["1", "x" * 200, "1", "1", ""]] * 6000)
        response = await upload(client, headers, big)
        assert response.status_code == 413, response.text
        assert "MAX_UPLOAD_MB" in response.json()["detail"]


async def test_concurrent_overlapping_imports(container: Container) -> None:
    first = csv_bytes([[str(1000 + i), f"A{i}", "1", "1", ""] for i in range(3000)])
    second = csv_bytes([[str(2000 + i), f"B{i}", "2", "2", ""] for i in range(3000)])
    service = ImportService(container)
    reports = await asyncio.gather(
        service.run(io.BytesIO(first), "a.csv"), service.run(io.BytesIO(second), "b.csv")
    )
    assert sum(r.created for r in reports) == 4000
    assert sum(r.updated for r in reports) == 2000
    stored = await products(container)
    assert len(stored) == 4000
    assert {p["version"] for p in stored.values()} <= {1, 2}
    assert sum(p["version"] == 2 for p in stored.values()) == 2000


async def test_last_updated_absent_means_import_time_and_stays(container: Container) -> None:
    content = b"barcode,name,price,quantity\n1,a,1,1\n"
    service = ImportService(container)
    before = datetime.now(UTC)
    assert (await service.run(io.BytesIO(content), "a.csv")).created == 1
    stamp = (await products(container))["1"]["last_updated"]
    assert stamp >= before.replace(microsecond=0)
    report = await service.run(io.BytesIO(content), "a.csv", ImportOptions())
    assert report.unchanged == 1
    assert (await products(container))["1"]["last_updated"] == stamp


def test_cli_import(cli_env: dict[str, str], tmp_path: Path) -> None:
    good = write(tmp_path / "good.csv", csv_bytes(GOOD))
    result = run_cli(cli_env, "import", str(good), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["created"] == 2
    assert report["status"] == "applied"

    result = run_cli(cli_env, "import", str(good), "--dry-run")
    assert result.returncode == 0
    assert "validated" in result.stdout
    assert "unchanged" in result.stdout

    bad_rows = [[str(500 + i), "", "1", "1", ""] for i in range(25)]
    bad = write(tmp_path / "bad.csv", csv_bytes(bad_rows))
    result = run_cli(cli_env, "import", str(bad))
    assert result.returncode == 1
    assert "row 2 name" in result.stderr
    assert "…and 5 more" in result.stderr

    result = run_cli(cli_env, "import", str(bad), "--on-error", "skip", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["rejected"] == 25

    result = run_cli(
        cli_env, "import", "-", "--json", input=csv_bytes([["77", "stdin", "1", "1", ""]])
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["created"] == 1

    notzip = write(tmp_path / "x.xlsx", b"not a zip")
    assert run_cli(cli_env, "import", str(notzip)).returncode == 2
    assert run_cli(cli_env, "import", str(tmp_path / "missing.csv")).returncode == 2
    assert run_cli(cli_env, "import", str(good), "--on-error", "maybe").returncode == 2


def test_gen_products_file_through_cli(cli_env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "gen.csv"
    subprocess.run(
        [sys.executable, str(ROOT.parent / "shared" / "gen_products.py"), "5000", str(target)],
        check=True,
    )
    result = run_cli(cli_env, "import", str(target), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["created"] == 5000


async def test_products_deleted_or_truncated_by_hand_take_their_pending_rows_along(
    client: httpx.AsyncClient, headers: dict[str, str], container: Container
) -> None:
    """No foreign key (a check per imported row): migration 0009's statement triggers."""
    assert (await upload(client, headers, csv_bytes(GOOD))).status_code == 200
    pending = "SELECT barcode FROM pending_products ORDER BY barcode"
    async with container.engine.begin() as conn:
        assert (await conn.exec_driver_sql(pending)).scalars().all() == [
            "0001234",
            "808080808080",
        ]
        await conn.exec_driver_sql("DELETE FROM products WHERE barcode = '0001234'")
        assert (await conn.exec_driver_sql(pending)).scalars().all() == ["808080808080"]
        await conn.exec_driver_sql("TRUNCATE products")
        assert (await conn.exec_driver_sql(pending)).scalars().all() == []
    # The same file again: nothing left behind stands in its way.
    again = await upload(client, headers, csv_bytes(GOOD))
    assert (again.status_code, again.json()["created"]) == (200, 2), again.text
