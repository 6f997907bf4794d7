"""What the catalog API returns: products and pages of them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

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
