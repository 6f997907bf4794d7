"""GET /products/export: CSV and XLSX in the import's columns, streamed, formula-safe."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
import anyio.to_thread
import httpx
from litestar import Litestar
from openpyxl import load_workbook

from ekimo.container import Container
from ekimo.products.export import BATCH_SIZE, COLUMNS
from tests.products.conftest import insert_products, numbered, product

Client = httpx.AsyncClient

TRICKY = [
    product("0000000000017", 'Bolt, M6 "hex"', price=Decimal("0.99"), quantity=Decimal("1.125")),
    product("00042", "line one\nline two", price=Decimal("123456789012.34")),
    product("12345678901234", "Café crème · 日本の茶", quantity=Decimal("0.000")),
    product("5", "=SUM(A1)"),
    product("6", "+1"),
    product("7", "-x"),
    product("8", "@me"),
    product("9", "'quoted"),
    product(
        "10",
        "plain",
        last_updated=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    ),
]


def read_csv(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


async def test_csv_export_columns_quoting_and_escapes(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    await insert_products(container, TRICKY)
    response = await client.get("/products/export", params={"format": "csv"}, headers=auth_headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert ".csv" in response.headers["content-disposition"]
    assert response.content.startswith(codecs.BOM_UTF8)  # Excel then reads it as UTF-8
    rows = read_csv(response.content)
    assert tuple(rows[0]) == COLUMNS
    by_barcode = {row[0]: row for row in rows[1:]}
    assert len(by_barcode) == len(TRICKY)
    assert by_barcode["0000000000017"] == [
        "0000000000017",
        'Bolt, M6 "hex"',
        "0.99",
        "1.125",
        "2025-07-01T12:00:00Z",
    ]
    assert by_barcode["00042"][1:3] == ["line one\nline two", "123456789012.34"]
    assert by_barcode["12345678901234"][1] == "Café crème · 日本の茶"
    assert by_barcode["12345678901234"][3] == "0.000"
    assert [by_barcode[b][1] for b in "5678"] == ["'=SUM(A1)", "'+1", "'-x", "'@me"]
    assert by_barcode["9"][1] == "'quoted"
    assert by_barcode["10"][4] == "2025-01-02T03:04:05.678901Z"


async def test_xlsx_export_types_and_escapes(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    await insert_products(container, TRICKY)
    response = await client.get("/products/export", params={"format": "xlsx"}, headers=auth_headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    workbook = load_workbook(io.BytesIO(response.content), read_only=True)
    rows = [list(row) for row in workbook.active.iter_rows(values_only=True)]  # type: ignore[union-attr]
    assert tuple(rows[0]) == COLUMNS
    by_barcode = {row[0]: row for row in rows[1:]}
    assert len(by_barcode) == len(TRICKY)
    assert by_barcode["0000000000017"][1:4] == ['Bolt, M6 "hex"', 0.99, 1.125]
    assert by_barcode["00042"][1] == "line one\nline two"
    assert by_barcode["12345678901234"][1] == "Café crème · 日本の茶"
    assert [by_barcode[b][1] for b in "5678"] == ["'=SUM(A1)", "'+1", "'-x", "'@me"]
    assert by_barcode["10"][4] == "2025-01-02T03:04:05.678901Z"


async def test_export_takes_the_list_filters(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    await insert_products(container, [product("1", "Red Kettle"), product("2", "Lamp")])
    for file_format in ("csv", "xlsx"):
        response = await client.get(
            "/products/export",
            params={"format": file_format, "q": "kettle"},
            headers=auth_headers,
        )
        assert response.status_code == 200
        if file_format == "csv":
            rows = read_csv(response.content)
        else:
            sheet: Any = load_workbook(io.BytesIO(response.content), read_only=True).active
            rows = [list(row) for row in sheet.iter_rows(values_only=True)]
        assert [row[0] for row in rows[1:]] == ["1"]


async def test_export_problems(client: Client, auth_headers: dict[str, str]) -> None:
    for params in ({"format": "pdf"}, {"sort": "colour"}, {"state": "done"}):
        response = await client.get("/products/export", params=params, headers=auth_headers)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_empty_catalog_exports_the_header(
    client: Client, auth_headers: dict[str, str]
) -> None:
    response = await client.get("/products/export", headers=auth_headers)
    assert response.status_code == 200
    assert read_csv(response.content) == [list(COLUMNS)]
    xlsx = await client.get("/products/export", params={"format": "xlsx"}, headers=auth_headers)
    sheet: Any = load_workbook(io.BytesIO(xlsx.content), read_only=True).active
    assert [list(row) for row in sheet.iter_rows(values_only=True)] == [list(COLUMNS)]


async def asgi_get(app: Litestar, path: str, query: str, headers: dict[str, str]) -> list[bytes]:
    """GET through the app's ASGI interface, recording each body message it sends."""
    messages: list[bytes] = []
    status: list[int] = []
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }

    async def call_app() -> None:
        finished = anyio.Event()
        requested: list[bool] = []

        async def receive() -> dict[str, Any]:
            if not requested:
                requested.append(True)
                return {"type": "http.request", "body": b"", "more_body": False}
            await finished.wait()  # like a server: disconnect once the response is complete
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    messages.append(message["body"])
                if not message.get("more_body"):
                    finished.set()

        await app(scope, receive, send)  # type: ignore[arg-type]

    await call_app()
    assert status == [200]
    return messages


async def test_large_exports_are_sent_in_chunks(
    app: Litestar, client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    count = BATCH_SIZE * 3 + 7
    await insert_products(container, numbered(count))

    chunks = await asgi_get(app, "/products/export", "format=csv", auth_headers)
    assert len(chunks) >= 4  # the header, then one chunk per batch of products
    rows = read_csv(b"".join(chunks))
    assert len(rows) == count + 1
    assert [row[0] for row in rows[1:]] == [f"{i:013d}" for i in range(count)]

    chunks = await asgi_get(app, "/products/export", "format=xlsx", auth_headers)
    sheet: Any = load_workbook(io.BytesIO(b"".join(chunks)), read_only=True).active
    assert sum(1 for _ in sheet.iter_rows(values_only=True)) == count + 1
