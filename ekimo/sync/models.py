"""Sync tables (placeholder: the Sync issue defines `sync_runs` and rejections)."""

from __future__ import annotations

from advanced_alchemy.base import BigIntAuditBase
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column


class SyncRun(BigIntAuditBase):
    __tablename__ = "sync_runs"

    status: Mapped[str] = mapped_column(String(16))
