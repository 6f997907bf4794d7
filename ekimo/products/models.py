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
