"""What the catalog API returns: products and pages of them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

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


class ProductPage(msgspec.Struct):
    """A page of the catalog: `items`, `total`, `limit`, `offset`, and how to go on."""

    items: list[ProductOut]
    total: Annotated[
        int,
        msgspec.Meta(
            description="Products matching the filters: an exact count when `total_exact`; "
            "when they are many (more than ekimo counts for a page), PostgreSQL's estimate."
        ),
    ]
    limit: Annotated[int, msgspec.Meta(description="The page size asked for.")]
    offset: Annotated[int, msgspec.Meta(description="Products skipped before this page.")]
    total_exact: Annotated[
        bool, msgspec.Meta(description="Whether `total` is an exact count or an estimate.")
    ]
    next: Annotated[
        str | None,
        msgspec.Meta(
            description="Cursor of the next page: pass it as `cursor` (same filters and sort) "
            "to continue after this page's last product; null on the last page."
        ),
    ]
