"""HTTP: GET /audit, the audit trail, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from advanced_alchemy.service import OffsetPagination
from litestar import get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.types import ControllerRouterHandler

from ekimo.bounds import instant
from ekimo.docs import problems
from ekimo.params import Offset, page_size, text
from ekimo.users.audit_trail import AuditTrail
from ekimo.users.guards import allow
from ekimo.users.roles import READ_AUDIT
from ekimo.users.schemas import AuditEventOut

MAX_PAGE_SIZE = 1000


@get(
    "/audit",
    opt=allow(READ_AUDIT),
    tags=["accounts"],
    summary="The audit trail, newest first",
    responses=problems(400, 401, 422),
    cache=False,
    dependencies={"trail": Provide(create_service_provider(AuditTrail))},
)
async def list_audit_events(
    trail: NamedDependency[AuditTrail],
    actor: Annotated[str | None, text("Only events of this account (its name).")] = None,
    action: Annotated[str | None, text("Only this action, e.g. `user.role_changed`.")] = None,
    since: Annotated[
        datetime | None,
        QueryParameter(
            description="Only events at or after this ISO 8601 instant (UTC if no offset)."
        ),
    ] = None,
    limit: Annotated[int, page_size(MAX_PAGE_SIZE)] = 100,
    offset: Offset = 0,
) -> OffsetPagination[AuditEventOut]:
    """Sign-ups, failed logins, changes of role, state or password, deletions, API keys made
    and revoked, imports applied and syncs started by hand."""
    moment = instant(since, "since") if since is not None else None
    return await trail.page(actor=actor, action=action, since=moment, limit=limit, offset=offset)


routes: list[ControllerRouterHandler] = [list_audit_events]
