"""The catalog's tables: one row per product, and one per product the sync has still to send."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from advanced_alchemy.base import BigIntAuditBase, DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    Numeric,
    String,
    func,
    select,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column

# The sort keys with an index (key, id) of their own; `barcode` is unique, its index suffices.
# Sorting by quantity, created_at or version reads the table: every index costs every write,
# more than those rare sorts would gain.
SORT_INDEXED = ("name", "price", "last_updated", "updated_at")


class PendingProduct(DefaultBase):
    """A product whose current version the external API has not acknowledged yet.

    Apart from `products` so that acknowledging a version deletes a narrow row instead of
    rewriting the product (an update of `products` rewrites every one of its indexes). No
    foreign key (a check per imported row): migration 0009's statement triggers delete the
    rows of products deleted or truncated by hand (ekimo itself never deletes products)."""

    __tablename__ = "pending_products"

    product_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The product's (barcodes never change): the pending page, in barcode order, walks this
    # column's index, however few of the catalog's products are pending.
    barcode: Mapped[str] = mapped_column(String(14), unique=True)
    # The version to send: the product's own, kept equal by every write of `products.writes`.
    version: Mapped[int] = mapped_column(BigInteger)
    # The last version the external API acknowledged (0: none yet).
    synced_version: Mapped[int] = mapped_column(BigInteger)


class Product(BigIntAuditBase):
    """A catalog entry; pending sync while it has a row in `pending_products`."""

    __tablename__ = "products"
    __table_args__ = (
        # Digits only (varchar(14) bounds the length); ltrim, as a regex is far costlier per row.
        CheckConstraint(
            "barcode <> '' AND ltrim(barcode, '0123456789') = ''", name="barcode_digits"
        ),
        CheckConstraint("char_length(name) BETWEEN 1 AND 255", name="name_length"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        # "Name contains" (ILIKE '%q%') reads the trigram index, not the whole table.
        Index(
            "ix_products_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
        # One per sort key, with the id tiebreaker: a page in either direction reads the index
        # from where the previous page ended (barcode is unique: its own index serves).
        *(Index(f"ix_products_{key}", key, "id") for key in SORT_INDEXED),
    )

    barcode: Mapped[str] = mapped_column(String(14), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    quantity: Mapped[Decimal] = mapped_column(Numeric(15, 3))
    last_updated: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    version: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
    if TYPE_CHECKING:
        synced_version: Mapped[int]  # mapped below, once the class has its `id`

    @property
    def state(self) -> str:
        return "pending" if self.version > self.synced_version else "synced"


# A product without a pending row is synced at its current version.
Product.synced_version = column_property(
    func.coalesce(
        select(PendingProduct.synced_version)
        .where(PendingProduct.product_id == Product.id)
        .scalar_subquery(),
        Product.version,
    )
)
