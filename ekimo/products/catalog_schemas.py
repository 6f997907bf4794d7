"""What the catalog API returns: products, pages of them, import history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from ekimo.products.models import Product

ProductState = Literal["pending", "synced"]
ExportFormat = Literal["csv", "xlsx"]


class ProductOut(msgspec.Struct):
    """A catalog entry; `state` is `pending` until the external API has its current version."""

    barcode: str
    name: str
    price: Decimal
    quantity: Decimal
    last_updated: datetime
    version: int
    synced_version: int
    state: ProductState
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, product: Product) -> ProductOut:
        return cls(
            barcode=product.barcode,
            name=product.name,
            price=product.price,
            quantity=product.quantity,
            last_updated=product.last_updated,
            version=product.version,
            synced_version=product.synced_version,
            state="pending" if product.version > product.synced_version else "synced",
            created_at=product.created_at,
            updated_at=product.updated_at,
        )


class ProductPage(msgspec.Struct):
    items: list[ProductOut]
    total: int
    limit: int
    offset: int
