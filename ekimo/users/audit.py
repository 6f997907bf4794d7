"""The audit trail: who did what to which account, key or catalog, and when.

`record` writes one event in a transaction of its own and never raises: a trail that cannot be
written is logged, and the action it records goes on. In SQL: commands that record (`ekimo
sync`) then start without the ORM model and Advanced Alchemy. `audit_trail` reads it back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import text

from ekimo.container import Container
from ekimo.db import is_unavailable

if TYPE_CHECKING:
    from ekimo.users.principals import Principal

logger = logging.getLogger(__name__)

_INSERT = text(
    "INSERT INTO audit_events (actor_id, actor_name, action, target, details)"
    " VALUES (:actor_id, :actor_name, :action, :target, CAST(:details AS jsonb))"
)


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
            encoded = msgspec.json.encode(values["details"]).decode()
            await conn.execute(_INSERT, {**values, "details": encoded})
    except Exception as exc:
        # An outage is expected and needs no traceback; anything else is a bug to see.
        logger.warning("audit: could not record %s", action, exc_info=not is_unavailable(exc))
