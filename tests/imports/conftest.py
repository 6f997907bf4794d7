"""Helpers for the import tests: files made here, an HTTP upload, the products table."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import Workbook

from ekimo.container import Container
from ekimo.imports.errors import ImportFailed
from ekimo.imports.schemas import ImportOptions, ImportReport
from ekimo.imports.service import ImportService
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
async def headers(client: httpx.AsyncClient) -> dict[str, str]:
    """Bearer headers of a registered account: every upload in these tests is authenticated."""
    return await register_and_login(client)


async def upload(
    client: httpx.AsyncClient,
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
            "SELECT p.barcode, p.name, p.price::text AS price, p.quantity::text AS quantity, "
            "p.last_updated, p.version, coalesce(s.synced_version, p.version) AS synced_version, "
            "p.updated_at FROM products p LEFT JOIN pending_products s ON s.product_id = p.id"
        )
        return {r.barcode: dict(r._mapping) for r in rows}


async def imports(container: Container) -> list[dict[str, Any]]:
    async with container.engine.connect() as conn:
        rows = await conn.exec_driver_sql("SELECT * FROM imports ORDER BY id")
        return [dict(r._mapping) for r in rows]


async def truncate_catalog(container: Container) -> None:
    async with container.engine.begin() as conn:
        await conn.exec_driver_sql("TRUNCATE products, pending_products, imports CASCADE")


async def import_by(
    fast_path: Any,
    container: Container,
    content: bytes,
    filename: str,
    *,
    fast: bool,
    options: ImportOptions | None = None,
) -> tuple[str, dict[str, Any]]:
    """Import with `fast_path` (fast_csv or fast_xlsx) on or off: (which path ran, the report
    as a dict without timings and ids)."""
    before = dict(fast_path.stats)
    fast_path.enabled = fast
    try:
        report: ImportReport | None = await ImportService(container).run(
            io.BytesIO(content), filename, options
        )
        body = report.to_dict()
    except ImportFailed as failed:
        report = failed.report
        body = (report.to_dict() if report else {}) | {"detail": failed.message}
    finally:
        fast_path.enabled = True
    taken = fast_path.stats["taken"] - before.get("taken", 0)
    for key in ("duration_ms", "import_id"):
        body.pop(key, None)
    return ("fast" if taken else "python"), body


def comparable(rows: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    def updated(r: dict[str, Any]) -> Any:
        # No last_updated in the file: the time of the import, which differs between imports.
        return "import time" if r["last_updated"] == r["updated_at"] else r["last_updated"]

    return {
        barcode: (r["name"], r["price"], r["quantity"], updated(r), r["version"])
        for barcode, r in rows.items()
    }


async def import_both_ways(
    fast_path: Any,
    container: Container,
    content: bytes,
    filename: str,
    options: ImportOptions | None = None,
) -> tuple[str, dict[str, Any], dict[str, tuple[Any, ...]]]:
    """Import with the fast path on, then off, each on an empty catalog: the same outcome.
    (Path taken with it on, report, rows.)"""
    await truncate_catalog(container)
    path, fast_report = await import_by(
        fast_path, container, content, filename, fast=True, options=options
    )
    fast_rows = comparable(await products(container))
    await truncate_catalog(container)
    other, python_report = await import_by(
        fast_path, container, content, filename, fast=False, options=options
    )
    assert other == "python"
    assert fast_report == python_report
    assert fast_rows == comparable(await products(container))
    return path, fast_report, fast_rows


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


__all__ = ["datetime"]
