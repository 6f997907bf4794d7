"""HTTP: API keys for machines — create (the secret is shown once), list, revoke.

Any account that may manage its own account (viewer, editor, admin) manages its own keys; an
admin sees and revokes everyone's. Keys themselves may not manage keys: a leaked key must not
be able to mint fresh keys (which would outlive its revocation) or revoke the ones in use.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, cast

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from advanced_alchemy.service import OffsetPagination
from litestar import Request, Response, delete, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody
from litestar.types import ControllerRouterHandler

from ekimo.bounds import instant
from ekimo.container import Container
from ekimo.docs import problems
from ekimo.params import Id, Offset, page_size
from ekimo.problem_documents import problem_response
from ekimo.users.auth import principals_of
from ekimo.users.guards import Forbidden, allow
from ekimo.users.keys import ApiKeyService, as_out, issue_key, owner_filter, revoke_key
from ekimo.users.principals import Principal
from ekimo.users.roles import OWN_ACCOUNT, Role
from ekimo.users.rules import InvalidInputError
from ekimo.users.schemas import ApiKeyCreated, ApiKeyCreateRequest, ApiKeyOut

MAX_PAGE_SIZE = 500
TAGS = ["api-keys"]
_MISSING_FIELD = re.compile(r"missing required field `(\w+)`")
# Advanced Alchemy's provider: an `ApiKeyService` per request on the app's `db_session`.
_SERVICES = {"keys": Provide(create_service_provider(ApiKeyService))}


def accounts_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Runs after the app-wide guard (which let the caller's role in): refuse API keys."""
    principal = cast("dict[str, Any]", connection.scope).get("user")
    if isinstance(principal, Principal) and principal.key_id is not None:
        raise Forbidden(
            "managing API keys needs an account's token from POST /auth; an API key cannot "
            "create, list or revoke keys"
        )


def _validation_as_422(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A body that breaks its schema is a 422 naming the field, as in POST /users."""
    errors = cast("list[object]", exc.extra) if isinstance(exc.extra, list) else []
    entries = [cast("dict[str, Any]", e) for e in errors if isinstance(e, dict)]
    fields = [_field_problem(e) for e in entries] or [
        ("body", "the body must be a JSON object with name and role")
    ]
    problem = InvalidInputError(fields[0][0], "; ".join(message for _, message in fields))
    return problem_response(request, problem)


def _field_problem(error: dict[str, Any]) -> tuple[str, str]:
    """(field, message) of one of Litestar's validation errors; a missing field is reported
    on the body (key `data`) by msgspec, so its name is taken from the message."""
    message = str(error.get("message", "invalid value"))
    if missing := _MISSING_FIELD.search(message):
        return missing.group(1), f"{missing.group(1)} is required"
    key = str(error.get("key") or "")
    field = key if key and key != "data" else "body"
    return field, f"{field}: {message}"


@post(
    "/api-keys",
    opt=allow(OWN_ACCOUNT),
    guards=[accounts_only],
    tags=TAGS,
    summary="Create an API key",
    status_code=201,
    responses=problems(400, 401, 403, 422),
    exception_handlers={ValidationException: _validation_as_422},
    dependencies=_SERVICES,
)
async def create_api_key(
    request: Request[Principal, Any, Any],
    data: JSONBody[ApiKeyCreateRequest],
    keys: NamedDependency[ApiKeyService],
    container: NamedDependency[Container],
) -> ApiKeyCreated:
    """Create a key of your account. Its `role` may not exceed your account's (403); an
    `expires_at` must be in the future (422). The `secret` is in this answer only: send it as
    `Authorization: Bearer <secret>`. Changing your account's role, password or state ends
    all its keys. API keys cannot create keys."""
    expires_at = None if data.expires_at is None else instant(data.expires_at, "expires_at")
    key, secret = await issue_key(
        keys, container, request.user, data.name, Role(data.role), expires_at
    )
    return ApiKeyCreated(api_key=as_out(key), secret=secret)


@get(
    "/api-keys",
    opt=allow(OWN_ACCOUNT),
    guards=[accounts_only],
    tags=TAGS,
    summary="List API keys, newest first",
    cache=False,
    responses=problems(400, 401, 403, 422),
    dependencies=_SERVICES,
)
async def list_api_keys(
    request: Request[Principal, Any, Any],
    keys: NamedDependency[ApiKeyService],
    limit: Annotated[int, page_size(MAX_PAGE_SIZE)] = 50,
    offset: Offset = 0,
) -> OffsetPagination[ApiKeyOut]:
    """Your keys; an admin sees every account's. Never a secret: `prefix` is its first
    characters. `last_used_at` is written at most once a minute per key."""
    return await keys.page(owner_id=owner_filter(request.user), limit=limit, offset=offset)


@delete(
    "/api-keys/{key_id:int}",
    opt=allow(OWN_ACCOUNT),
    guards=[accounts_only],
    tags=TAGS,
    summary="Revoke an API key",
    status_code=204,
    # 400: Litestar documents one for every path parameter; declared so it is a problem.
    responses=problems(400, 401, 403, 404),
    dependencies=_SERVICES,
)
async def revoke_api_key(
    request: Request[Principal, Any, Any],
    keys: NamedDependency[ApiKeyService],
    container: NamedDependency[Container],
    key_id: Id,
) -> None:
    """Revoke one of your keys (an admin: anyone's). It is refused at once by this server and
    within seconds by every other. 404 when there is no such key of yours."""
    await revoke_key(keys, container, principals_of(request.app.state), request.user, key_id)


routes: list[ControllerRouterHandler] = [create_api_key, list_api_keys, revoke_api_key]
