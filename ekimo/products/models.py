"""The catalog's table: one row per product, pending sync while `version > synced_version`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from advanced_alchemy.base import BigIntAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    Numeric,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

# The sort keys with an index (key, id) of their own; `barcode` is unique, its index suffices.
# Sorting by quantity, created_at or version reads the table: every index costs every write (a
# sync's marking updates each product, never in place, as the pending index names
# synced_version), more than those rare sorts would gain.
SORT_INDEXED = ("name", "price", "last_updated", "updated_at")


class Product(BigIntAuditBase):
    """A catalog entry. Pending sync while `version > synced_version`."""

    __tablename__ = "products"
    __table_args__ = (
        # Digits only (varchar(14) bounds the length); ltrim, as a regex is far costlier per row.
        CheckConstraint(
            "barcode <> '' AND ltrim(barcode, '0123456789') = ''", name="barcode_digits"
        ),
        CheckConstraint("char_length(name) BETWEEN 1 AND 255", name="name_length"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        # Finding pending products costs nothing when there are none.
        Index("ix_products_pending", "id", postgresql_where=text("version > synced_version")),
        # The pending page (by barcode, the default sort) and the pending count read only these
        # (the version too: the count leaves out rejected versions without reading the table).
        Index(
            "ix_products_pending_barcode",
            "barcode",
            postgresql_include=["version"],
            postgresql_where=text("version > synced_version"),
        ),
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
        # Migration 0007 also creates the statistics `st_products_pending` (on the expression
        # `version > synced_version`; SQLAlchemy has no form for them): estimates read them.
    )

    barcode: Mapped[str] = mapped_column(String(14), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    quantity: Mapped[Decimal] = mapped_column(Numeric(15, 3))
    last_updated: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    version: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
    synced_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    @property
    def state(self) -> str:
        return "pending" if self.version > self.synced_version else "synced"
