"""The `users` table: a name and a bcrypt hash; id and timestamps from Advanced Alchemy."""

from __future__ import annotations

from advanced_alchemy.base import BigIntAuditBase
from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column


class User(BigIntAuditBase):
    __tablename__ = "users"
    __table_args__ = (
        # Case-insensitive uniqueness is the database's job, so concurrent sign-ups can't race.
        Index("uq_users_username_lower", text("lower(username)"), unique=True),
    )

    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(100))
