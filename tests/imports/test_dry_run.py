"""A dry run answers what the import would do, on every path, without writing and without the
catalog's write lock: other writers are not held up, and no dead rows are left behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from ekimo import db
from ekimo.container import Container
from ekimo.imports.fast import csv as fast_csv
from ekimo.imports.fast import xlsx as fast_xlsx
from ekimo.imports.schemas import ImportOptions
from ekimo.products.writes import PRODUCTS_WRITE_LOCK
from tests.imports.conftest import csv_bytes, import_by, products, truncate_catalog, xlsx_bytes

DRY = ImportOptions(dry_run=True)
# Against STORED: one unchanged, one renamed, one without a date (it keeps the stored one, so
# unchanged), one new.
STORED = [
    ["1", "Kept", "1.00", "1", "2025-01-01T00:00:00"],
    ["2", "Old name", "2.00", "2", "2025-01-01T00:00:00"],
    ["3", "No date", "3.00", "3", "2025-01-01T00:00:00"],
]
MOMENT = datetime(2025, 1, 1)
CSV_FILE = csv_bytes(
    [
        ["1", "Kept", "1.00", "1", "2025-01-01T00:00:00"],
        ["2", "New name", "2.00", "2", "2025-01-01T00:00:00"],
        ["3", "No date", "3.00", "3", ""],
        ["4", "New", "4.00", "4", ""],
    ]
)
XLSX_FILE = xlsx_bytes(
    [
        ["1", "Kept", 1, 1, MOMENT],
        ["2", "New name", 2, 2, MOMENT],
        ["3", "No date", 3, 3, None],
        ["4", "New", 4, 4, None],
    ]
)
FILES: dict[str, tuple[Any, str, bytes]] = {
    "csv": (fast_csv, "products.csv", CSV_FILE),
    "xlsx": (fast_xlsx, "products.xlsx", XLSX_FILE),
}


@contextlib.asynccontextmanager
async def write_lock_held(container: Container) -> AsyncIterator[None]:
    """The catalog's write lock, held exclusively by another session, as an import holds it."""
    url = container.settings.database_url
    assert url is not None
    holder = await asyncpg.connect(db.libpq_url(url))
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", PRODUCTS_WRITE_LOCK)
        yield
    finally:
        await holder.close()


async def _stored(container: Container) -> None:
    await truncate_catalog(container)
    _, report = await import_by(fast_csv, container, csv_bytes(STORED), "stored.csv", fast=True)
    assert report["created"] == len(STORED), report


def _counts(report: dict[str, Any]) -> tuple[int, int, int]:
    return report["created"], report["updated"], report["unchanged"]


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "python path"])
@pytest.mark.parametrize("kind", list(FILES))
async def test_a_dry_run_counts_what_the_import_does_while_a_writer_holds_the_lock(
    container: Container, kind: str, fast: bool
) -> None:
    module, filename, content = FILES[kind]
    await _stored(container)
    before = await products(container)

    async with write_lock_held(container):
        # Bounded: a dry run that waited for the lock would wait for as long as it is held.
        path, dry = await asyncio.wait_for(
            import_by(module, container, content, filename, fast=fast, options=DRY), 60
        )
    assert path == ("fast" if fast else "python")
    assert (dry["status"], dry["dry_run"]) == ("validated", True), dry
    assert _counts(dry) == (1, 1, 2)
    assert await products(container) == before

    _, applied = await import_by(module, container, content, filename, fast=fast)
    assert applied["status"] == "applied", applied
    assert _counts(applied) == _counts(dry)


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "python path"])
@pytest.mark.parametrize("kind", list(FILES))
async def test_a_dry_run_leaves_no_dead_rows(container: Container, kind: str, fast: bool) -> None:
    module, filename, _ = FILES[kind]
    rows = [[str(n), f"Product {n}", "1.50", "2", ""] for n in range(1, 2001)]
    content = (
        csv_bytes(rows) if kind == "csv" else xlsx_bytes([[*r[:2], 1.5, 2, None] for r in rows])
    )
    await truncate_catalog(container)

    _, report = await import_by(module, container, content, filename, fast=fast, options=DRY)

    assert _counts(report) == (2000, 0, 0), report
    # An insert rolled back still leaves its pages behind (dead rows for the vacuum).
    async with container.engine.connect() as conn:
        sizes = await conn.exec_driver_sql(
            "SELECT pg_relation_size('products') + pg_relation_size('pending_products')"
        )
        assert sizes.scalar_one() == 0


@pytest.mark.parametrize("kind", list(FILES))
async def test_a_dry_run_of_a_barcode_twice_reports_what_the_import_reports(
    container: Container, kind: str
) -> None:
    module, filename, _ = FILES[kind]
    rows = [["7", "First", "1.00", "1", ""], ["8", "Other", "1.00", "1", ""]]
    rows.append(["7", "Again", "2.00", "2", ""])
    content = csv_bytes(rows) if kind == "csv" else xlsx_bytes([[*r[:2], 1, 1, None] for r in rows])
    await _stored(container)

    _, dry = await import_by(module, container, content, filename, fast=True, options=DRY)
    _, applied = await import_by(module, container, content, filename, fast=True)

    assert (dry["status"], applied["status"]) == ("rejected", "rejected")
    assert dry["errors"] == applied["errors"]
    assert dry["errors"] == [
        {
            "row": 4,
            "column": "barcode",
            "value": "7",
            "message": "barcode 7 already appears on row 2",
        }
    ]
    skipped = ImportOptions(dry_run=True, on_error="skip")
    _, dry_skip = await import_by(module, container, content, filename, fast=True, options=skipped)
    assert (dry_skip["status"], _counts(dry_skip), dry_skip["rejected"]) == (
        "validated",
        (2, 0, 0),
        1,
    )
