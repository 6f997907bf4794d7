"""Catalog fixtures: products written straight into the database, a user's headers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ekimo.container import Container
from ekimo.products.models import PendingProduct, Product

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
    """Products as an import leaves them: pending, never synced, unless a row's
    `synced_version` says which version the external API has."""
    chosen = [dict(row) for row in rows]
    synced = [row.pop("synced_version", 0) for row in chosen]
    async with container.session() as session:
        products = [Product(**row) for row in chosen]
        session.add_all(products)
        await session.flush()
        session.add_all(
            PendingProduct(product_id=p.id, barcode=p.barcode, version=p.version, synced_version=s)
            for p, s in zip(products, synced, strict=True)
            if s < p.version
        )
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
