from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from advanced_alchemy.base import BigIntAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

# Every bulk write to `products` (an import, a received sync) first takes
# `pg_advisory_xact_lock(PRODUCTS_WRITE_LOCK)`: overlapping writers queue instead of deadlocking.
PRODUCTS_WRITE_LOCK = 0x656B696D6F01


class Product(BigIntAuditBase):
    """A catalog entry. Pending sync while `version > synced_version`."""

    __tablename__ = "products"
    __table_args__ = (
        # Digits only (varchar(14) bounds the length); ltrim, as a regex costs ~1 s per 1M rows.
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


class Import(BigIntAuditBase):
    """One import of a product file, whatever its outcome (applied, validated, rejected)."""

    __tablename__ = "imports"

    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    on_error: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    unchanged: Mapped[int] = mapped_column(BigInteger)
    rejected: Mapped[int] = mapped_column(BigInteger)
    # The first 1,000 errors ({"row", "column", "value", "message"}) and the total count.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    errors_total: Mapped[int] = mapped_column(BigInteger)
    errors_truncated: Mapped[bool] = mapped_column(Boolean)
    warnings: Mapped[list[str]] = mapped_column(JSONB)
    started_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    duration_ms: Mapped[int] = mapped_column(BigInteger)


def merge_into_products(source: str) -> str:
    """The one upsert rule of every import path: `source` (a table or a parenthesised query
    with barcode, name, price, quantity, last_updated) merged into `products`, `$1` = now.

    New barcodes are inserted at version 1; a real change bumps `version` and `updated_at`;
    identical values (a missing last_updated keeps the stored one) change nothing.
    """
    return f"""
MERGE INTO products AS p
USING {source} AS s ON p.barcode = s.barcode
WHEN MATCHED AND (p.name, p.price, p.quantity, p.last_updated)
        IS DISTINCT FROM (s.name, s.price, s.quantity, coalesce(s.last_updated, p.last_updated))
    THEN UPDATE SET name = s.name, price = s.price, quantity = s.quantity,
        last_updated = coalesce(s.last_updated, $1), version = p.version + 1, updated_at = $1
WHEN NOT MATCHED THEN
    INSERT (barcode, name, price, quantity, last_updated, version, synced_version,
            created_at, updated_at)
    VALUES (s.barcode, s.name, s.price, s.quantity, coalesce(s.last_updated, $1), 1, 0, $1, $1)
"""  # noqa: S608 (source is one of our own staging tables or queries, never user input)
