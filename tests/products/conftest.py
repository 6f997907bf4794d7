"""Catalog fixtures: products written straight into the database, a user's headers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ekimo.container import Container
from ekimo.products.models import Product

BASE_TIME = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)


def product(barcode: str, name: str | None = None, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "barcode": barcode,
        "name": name or f"Product {barcode}",
        "price": Decimal("1.00"),
        "quantity": Decimal("1.000"),
        "last_updated": BASE_TIME,
    }
    row.update(values)
    return row


async def insert_products(container: Container, rows: Iterable[dict[str, Any]]) -> None:
    async with container.session() as session:
        session.add_all(Product(**row) for row in rows)
        await session.commit()


def numbered(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        product(
            f"{i:013d}",
            price=Decimal(i) / 4,
            last_updated=BASE_TIME + timedelta(minutes=i),
        )
        for i in range(start, start + count)
    ]
