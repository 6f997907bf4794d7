"""HTTP: the accounts. Your own (GET /users/me, POST /users/me/password) and, for admins,
everyone's (GET /users, GET, PATCH and DELETE /users/{id}).

The handlers translate: the rules (the last active admin stays, a change ends the account's
tokens and keys) live in `UserService`. After a change the handler drops this process's
principal cache, so the change applies here at once (other processes: within `CACHE_SECONDS`),
and records it in the audit trail (a role or state change: `apply_account_change`, which the
console calls too).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from advanced_alchemy.extensions.litestar.providers import create_service_provider
from advanced_alchemy.service import OffsetPagination
from litestar import Request, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import JSONBody
from litestar.types import ControllerRouterHandler

from ekimo.container import Container
from ekimo.docs import problems
from ekimo.params import Id, Offset, page_size
from ekimo.users import audit
from ekimo.users.audit import Action
from ekimo.users.auth import RATE_LIMIT_STORE, LimitMiddleware, principals_of
from ekimo.users.guards import allow
from ekimo.users.models import User
from ekimo.users.principals import Principal
from ekimo.users.roles import MANAGE_ACCOUNTS, OWN_ACCOUNT, Role
from ekimo.users.schemas import AccountPatch, PasswordChangeRequest, UserOut, UserResponse
from ekimo.users.service import UserService, apply_account_change

logger = logging.getLogger(__name__)

TAGS = ["accounts"]
MAX_PAGE_SIZE = 500
# Each change checks a password with bcrypt and hashes a new one: a stolen token must not be
# able to guess the password at speed (nor spend the server's CPU).
PASSWORD_CHANGES_PER_MINUTE = 10
# Advanced Alchemy's provider: a `UserService` per request on the app's `db_session`.
_SERVICES = {"users": Provide(create_service_provider(UserService))}


class PasswordChangeRateLimitMiddleware(LimitMiddleware):
    counted = "password changes"


password_change_rate_limit = RateLimitConfig(
    rate_limit=("minute", PASSWORD_CHANGES_PER_MINUTE),
    store=RATE_LIMIT_STORE,
    middleware_class=PasswordChangeRateLimitMiddleware,
)


def _out(user: User) -> UserOut:
    return msgspec.convert(user, UserOut, from_attributes=True)


def _target(user: User) -> str:
    return f"user:{user.id}"


@get(
    "/users/me",
    opt=allow(OWN_ACCOUNT),
    tags=TAGS,
    summary="Your account",
    cache=False,
    responses=problems(401, 403, 404),
    dependencies=_SERVICES,
)
async def me(
    request: Request[Principal, Any, Any], users: NamedDependency[UserService]
) -> UserResponse:
    """The account the bearer token (or API key) belongs to."""
    return UserResponse(user=_out(await users.get_user(request.user.user_id)))


@post(
    "/users/me/password",
    opt=allow(OWN_ACCOUNT),
    tags=TAGS,
    summary="Change your password",
    status_code=204,
    responses=problems(400, 401, 403, 404, 422, 429),
    dependencies=_SERVICES,
    middleware=[password_change_rate_limit.middleware],
)
async def change_password(
    request: Request[Principal, Any, Any],
    data: JSONBody[PasswordChangeRequest],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
) -> None:
    """Replace your password. 422 naming `current_password` when it is wrong, or
    `new_password` when it breaks the registration's rule. Every token and API key of the
    account stops working, this request's too: log in again with the new password."""
    principal = request.user
    user = await users.change_password(principal.user_id, data.current_password, data.new_password)
    principals_of(request.app.state).forget()
    logger.info("password changed: id=%s", user.id)
    await audit.record(container, Action.PASSWORD_CHANGED, actor=principal, target=_target(user))


@get(
    "/users",
    opt=allow(MANAGE_ACCOUNTS),
    tags=TAGS,
    summary="List accounts, oldest first",
    cache=False,
    responses=problems(400, 401, 403, 422),
    dependencies=_SERVICES,
)
async def list_users(
    users: NamedDependency[UserService],
    limit: Annotated[int, page_size(MAX_PAGE_SIZE)] = 50,
    offset: Offset = 0,
) -> OffsetPagination[UserOut]:
    """Every account with its role and whether it is active."""
    items, total = await users.page(limit=limit, offset=offset)
    return OffsetPagination(
        items=[_out(user) for user in items], total=total, limit=limit, offset=offset
    )


@get(
    "/users/{user_id:int}",
    opt=allow(MANAGE_ACCOUNTS),
    tags=TAGS,
    summary="An account",
    cache=False,
    responses=problems(400, 401, 403, 404),
    dependencies=_SERVICES,
)
async def get_user(users: NamedDependency[UserService], user_id: Id) -> UserResponse:
    return UserResponse(user=_out(await users.get_user(user_id)))


@patch(
    "/users/{user_id:int}",
    opt=allow(MANAGE_ACCOUNTS),
    tags=TAGS,
    summary="Change an account's role or active state",
    responses=problems(400, 401, 403, 404, 409),
    dependencies=_SERVICES,
)
async def update_user(
    request: Request[Principal, Any, Any],
    data: JSONBody[AccountPatch],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
    user_id: Id,
) -> UserResponse:
    """Set `role` and/or `active` (an absent field stays). A change ends the account's tokens
    and API keys. 409 when it would leave no active admin."""
    change = await apply_account_change(
        users,
        container,
        principals_of(request.app.state),
        request.user,
        user_id,
        role=Role(data.role) if data.role is not None else None,
        active=data.active,
    )
    return UserResponse(user=_out(change.user))


@delete(
    "/users/{user_id:int}",
    opt=allow(MANAGE_ACCOUNTS),
    tags=TAGS,
    summary="Delete an account",
    responses=problems(400, 401, 403, 404, 409),
    dependencies=_SERVICES,
)
async def delete_user(
    request: Request[Principal, Any, Any],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
    user_id: Id,
) -> None:
    """Delete the account and its API keys. Its imports and audit events stay, under its id
    and name. 409 when it is the last active admin."""
    user = await users.delete_account(user_id)
    principals_of(request.app.state).forget()
    logger.info("account deleted: id=%s username=%s", user.id, user.username)
    await audit.record(
        container,
        Action.USER_DELETED,
        actor=request.user,
        target=_target(user),
        details={"username": user.username, "role": user.role},
    )


routes: list[ControllerRouterHandler] = [
    me,
    change_password,
    list_users,
    get_user,
    update_user,
    delete_user,
]
