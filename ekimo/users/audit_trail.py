"""The audit trail read back (GET /audit), newest first, through Advanced Alchemy's service;
`audit.record` writes it."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from advanced_alchemy.filters import LimitOffset, OrderBy, StatementFilter
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import OffsetPagination, SQLAlchemyAsyncRepositoryService
from sqlalchemy import ColumnElement, func

from ekimo.users.models import AuditEvent
from ekimo.users.schemas import AuditEventOut


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
