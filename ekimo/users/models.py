"""The accounts' tables: users (a name, a bcrypt hash, a role), their API keys, and the audit
trail of what accounts did. Ids and timestamps come from Advanced Alchemy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from advanced_alchemy.base import BigIntAuditBase, BigIntBase, DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ekimo.users.roles import ROLES

_ROLE_CHECK = "role IN ({})".format(", ".join(f"'{role}'" for role in ROLES))


class User(BigIntAuditBase):
    __tablename__ = "users"
    __table_args__ = (
        # Case-insensitive uniqueness is the database's job, so concurrent sign-ups can't race.
        Index("uq_users_username_lower", text("lower(username)"), unique=True),
        CheckConstraint(_ROLE_CHECK, name="user_role"),
    )

    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), server_default="editor")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Bumped by every change that must end the account's sessions (role, active, password):
    # a token or key issued under another version is refused.
    token_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ApiKey(BigIntAuditBase):
    """A machine's credential: a role of its own, at most its creator's; only a hash is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(_ROLE_CHECK, name="api_key_role"),)

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    # The first characters of the secret, shown in listings to tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The owner's token_version when the key was made: a later change of the owner ends the key.
    user_token_version: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class AuditEvent(BigIntBase):
    """Who did what, when: kept when the account is gone (actor id and name are copies)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=text("now()"))
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class RevokedToken(DefaultBase):
    """An access token logged out before it expired, by its `jti`: refused until it expires
    (then the row is of no use, and the next log-out deletes it)."""

    __tablename__ = "revoked_tokens"

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
