"""The audit trail: who did what to which account, key or catalog, and when.

`record` writes one event in a transaction of its own and never raises: a trail that cannot be
written is logged, and the action it records goes on. `AuditTrail` reads it back (GET /audit).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec
from advanced_alchemy.filters import LimitOffset, OrderBy, StatementFilter
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import OffsetPagination, SQLAlchemyAsyncRepositoryService
from sqlalchemy import ColumnElement, func, insert

from ekimo.container import Container
from ekimo.db import is_unavailable
from ekimo.users.models import AuditEvent
from ekimo.users.principals import Principal
from ekimo.users.schemas import AuditEventOut

logger = logging.getLogger(__name__)


class Action:
    """The actions the trail records (the `action` column)."""

    SIGN_UP = "user.sign_up"
    USER_CREATED = "user.created"
    LOGIN_FAILED = "auth.login_failed"
    ROLE_CHANGED = "user.role_changed"
    ACTIVE_CHANGED = "user.active_changed"
    PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 (an action name)
    USER_DELETED = "user.deleted"
    KEY_CREATED = "api_key.created"
    KEY_REVOKED = "api_key.revoked"
    IMPORT_APPLIED = "import.applied"
    SYNC_TRIGGERED = "sync.triggered"


async def record(
    container: Container,
    action: str,
    *,
    actor: Principal | None = None,
    actor_name: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event; `actor_name` names an actor without an account (a failed login)."""
    values: dict[str, Any] = {
        "actor_id": actor.user_id if actor is not None else None,
        "actor_name": actor.username if actor is not None else actor_name,
        "action": action,
        "target": target,
        "details": details or {},
    }
    if actor is not None and actor.key_id is not None:
        values["details"] = {**values["details"], "api_key_id": actor.key_id}
    try:
        async with container.engine.begin() as conn:
            await conn.execute(insert(AuditEvent).values(**values))
    except Exception as exc:
        # An outage is expected and needs no traceback; anything else is a bug to see.
        logger.warning("audit: could not record %s", action, exc_info=not is_unavailable(exc))


class AuditEventRepository(SQLAlchemyAsyncRepository[AuditEvent]):
    model_type = AuditEvent


class AuditTrail(SQLAlchemyAsyncRepositoryService[AuditEvent, AuditEventRepository]):
    """Reads the trail back, newest first."""

    repository_type = AuditEventRepository
    # Two queries: the total stays right on a page past the end.
    count_with_window_function = False

    async def page(
        self,
        *,
        actor: str | None,
        action: str | None,
        since: datetime | None,
        limit: int,
        offset: int,
    ) -> OffsetPagination[AuditEventOut]:
        filters: list[StatementFilter | ColumnElement[bool]] = []
        if actor is not None:
            filters.append(func.lower(AuditEvent.actor_name) == actor.lower())
        if action is not None:
            filters.append(AuditEvent.action == action)
        if since is not None:
            moment = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
            filters.append(AuditEvent.at >= moment)
        events, total = await self.get_many_and_count(
            *filters,
            OrderBy(field_name="id", sort_order="desc"),
            LimitOffset(limit=limit, offset=offset),
        )
        return OffsetPagination(
            items=[msgspec.convert(e, AuditEventOut, from_attributes=True) for e in events],
            total=total,
            limit=limit,
            offset=offset,
        )
