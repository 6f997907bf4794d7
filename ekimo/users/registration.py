"""Who may create an account through POST /users, with which role, and how often.

`REGISTRATION=open`: anyone, with `REGISTRATION_ROLE`; `closed`: only an admin. Only an admin
chooses the role. Anonymous sign-ups are limited per address, like logins.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig

from ekimo.container import Container
from ekimo.settings import Settings
from ekimo.users import audit
from ekimo.users.audit import Action
from ekimo.users.auth import (
    RATE_LIMIT_STORE,
    LimitMiddleware,
    bearer_token,
    principals_of,
    resolve_request,
)
from ekimo.users.guards import Forbidden
from ekimo.users.models import User
from ekimo.users.principals import Principal
from ekimo.users.roles import Role
from ekimo.users.service import UserService

logger = logging.getLogger(__name__)

SIGNUPS_PER_MINUTE = 10


async def caller_of(request: Request[Any, Any, Any], container: Container) -> Principal | None:
    """The caller of a route open to anyone, when it sends a bearer credential (401 when that
    credential is not valid: a wrong token is never taken for no token)."""
    token = bearer_token(request)
    if token is None:
        return None
    return await resolve_request(request, principals_of(request.app.state), container, token)


def registration_role(settings: Settings, caller: Principal | None, asked: str | None) -> Role:
    """The role of the account to create; `Forbidden` when the caller may not create it."""
    is_admin = caller is not None and caller.role is Role.ADMIN
    if settings.registration == "closed" and not is_admin:
        raise Forbidden(
            "registration is closed (REGISTRATION=closed): creating accounts needs the admin role"
        )
    if asked is not None:
        if not is_admin:
            raise Forbidden("choosing the role of a new account needs the admin role")
        return Role(asked)
    return Role(settings.registration_role)


async def create_account(
    users: UserService,
    container: Container,
    caller: Principal | None,
    username: str,
    password: str,
    asked_role: str | None = None,
) -> User:
    """A new account, by `caller` (None: a sign-up), audited. Raises `Forbidden` when the
    caller may not create it, `InvalidInputError` or `UsernameTakenError` from the service."""
    role = registration_role(container.settings, caller, asked_role)
    user = await users.register(username, password, role)
    logger.info("account created: id=%s username=%s", user.id, user.username)
    await audit.record(
        container,
        Action.SIGN_UP if caller is None else Action.USER_CREATED,
        actor=caller,
        actor_name=user.username if caller is None else None,
        target=f"user:{user.id}",
        details={"username": user.username, "role": user.role},
    )
    return user


class SignupRateLimitMiddleware(LimitMiddleware):
    counted = "sign-ups"


def _anonymous(request: Request[Any, Any, Any]) -> bool:
    # An admin creating accounts is not a sign-up: only requests without a credential count.
    return bearer_token(request) is None


signup_rate_limit = RateLimitConfig(
    rate_limit=("minute", SIGNUPS_PER_MINUTE),
    store=RATE_LIMIT_STORE,
    middleware_class=SignupRateLimitMiddleware,
    check_throttle_handler=_anonymous,
)
