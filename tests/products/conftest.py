"""Helpers for the import tests: files made here, an HTTP upload, the products table."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from openpyxl import Workbook

from ekimo.container import Container
from tests.conftest import register_and_login

HEADER = ["barcode", "name", "price", "quantity", "last_updated"]


def csv_bytes(
    rows: list[list[str]], *, delimiter: str = ",", header: list[str] | None = None
) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header or HEADER)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def xlsx_bytes(rows: list[list[Any]], header: list[str] | None = None) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(header or HEADER)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.fixture
async def headers(client: AsyncTestClient[Any]) -> dict[str, str]:
    """Bearer headers once the accounts issue is in; nothing to send before that."""
    probe = await client.put("/products")
    if probe.status_code == 401:
        return await register_and_login(client)
    return {}


async def upload(
    client: AsyncTestClient[Any],
    headers: dict[str, str],
    content: bytes,
    filename: str = "products.csv",
    **params: str,
) -> Any:
    return await client.put(
        "/products", files={"file": (filename, content)}, params=params, headers=headers
    )


async def products(container: Container) -> dict[str, dict[str, Any]]:
    async with container.engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT barcode, name, price::text AS price, quantity::text AS quantity, "
            "last_updated, version, synced_version, updated_at FROM products"
        )
        return {r.barcode: dict(r._mapping) for r in rows}


async def imports(container: Container) -> list[dict[str, Any]]:
    async with container.engine.connect() as conn:
        rows = await conn.exec_driver_sql("SELECT * FROM imports ORDER BY id")
        return [dict(r._mapping) for r in rows]


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


__all__ = ["datetime"]
