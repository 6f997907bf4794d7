"""Export, then import the file: every row comes back unchanged, in both formats."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import httpx
import pytest

Client = httpx.AsyncClient

# name, price, quantity, last_updated, barcode (the generator's column order, not the export's)
TRICKY_ROWS = [
    ['Bolt, M6 "hex"', "0.99", "1.125", "2025-07-01T12:00:00", "0000000000017"],
    ["line one\nline two", "123456789012.34", "999999999999.999", "2025-07-01T12:00:00Z", "00042"],
    [
        "Café crème · 日本の茶 · Ñandú",
        "0",
        "0",
        "2025-01-02T03:04:05.678901+02:00",
        "12345678901234",
    ],
    ["=SUM(A1)", "1.5", "2", "2025-07-01T12:00:00", "5"],
    ["+1", "10", "0.001", "2025-07-01T12:00:00", "6"],
    ["-x", "0.01", "7.5", "2025-07-01T12:00:00", "7"],
    ["@me", "19.99", "3", "2025-07-01T12:00:00", "8"],
    ["'quoted", "2.00", "1", "2025-07-01T12:00:00", "9"],
    # A name that really starts with '= is written ''= (one more ') in a file.
    ["''=not a formula", "2.00", "1", "2025-07-01T12:00:00", "11"],
    ["tab\there; semi", "3", "1", "2025-07-01T12:00:00", "0"],
]


def csv_file(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "price", "quantity", "last_updated", "barcode"])
    writer.writerows(rows)
    return buffer.getvalue().encode()


async def upload(
    client: Client, headers: dict[str, str], filename: str, content: bytes
) -> dict[str, Any]:
    response = await client.put("/products", files={"file": (filename, content)}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def catalog(client: Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/products", params={"limit": 1000}, headers=headers)
    assert response.status_code == 200
    return response.json()["items"]


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
async def test_export_then_import_changes_nothing(
    client: Client, auth_headers: dict[str, str], file_format: str
) -> None:
    first = await upload(client, auth_headers, "products.csv", csv_file(TRICKY_ROWS))
    assert first["created"] == len(TRICKY_ROWS), first
    before = await catalog(client, auth_headers)
    names = {item["barcode"]: item["name"] for item in before}
    assert names["5"] == "=SUM(A1)"
    assert names["11"] == "'=not a formula"
    assert names["0000000000017"] == 'Bolt, M6 "hex"'
    assert names["00042"] == "line one\nline two"
    assert Decimal(next(i for i in before if i["barcode"] == "00042")["price"]) == Decimal(
        "123456789012.34"
    )

    exported = await client.get(
        "/products/export", params={"format": file_format}, headers=auth_headers
    )
    assert exported.status_code == 200
    report = await upload(client, auth_headers, f"export.{file_format}", exported.content)
    assert report["rows"] == len(TRICKY_ROWS), report
    assert report["unchanged"] == len(TRICKY_ROWS), report
    assert (report["created"], report["updated"], report["rejected"]) == (0, 0, 0), report

    after = await catalog(client, auth_headers)
    assert after == before  # same values, same versions, same updated_at


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
async def test_round_trip_of_a_generated_catalog(
    client: Client, auth_headers: dict[str, str], file_format: str
) -> None:
    rows = [
        [
            f"Widget {i}",
            f"{i * 7 % 100000 / 100:.2f}",
            str(i % 5000),
            "2025-07-01T12:00:00",
            f"{i:08d}",
        ]
        for i in range(2500)
    ]
    assert (await upload(client, auth_headers, "gen.csv", csv_file(rows)))["created"] == 2500
    exported = await client.get(
        "/products/export", params={"format": file_format}, headers=auth_headers
    )
    report = await upload(client, auth_headers, f"export.{file_format}", exported.content)
    assert (report["unchanged"], report["created"], report["updated"]) == (2500, 0, 0), report
