"""Sync tables: one row per sync run, one row per product version the receiver rejected."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.base import BigIntAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column


class SyncRun(BigIntAuditBase):
    """One sync run: `running` until it ends `succeeded`, `partial`, `failed` or `skipped`."""

    __tablename__ = "sync_runs"

    status: Mapped[str] = mapped_column(String(16))
    # Who started it: `schedule` (cron job), `api` (POST /sync), `cli` (ekimo sync),
    # `console` (Sync now).
    trigger: Mapped[str] = mapped_column(String(16))
    pending_at_start: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    sent: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    acknowledged: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    rejected: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    retries: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SyncRejection(BigIntAuditBase):
    """A product version the external API refused (400/422); skipped until the product changes."""

    __tablename__ = "sync_rejections"
    __table_args__ = (UniqueConstraint("barcode", "version"),)

    barcode: Mapped[str] = mapped_column(String(14))
    version: Mapped[int] = mapped_column(BigInteger)
    status_code: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str] = mapped_column(Text)
