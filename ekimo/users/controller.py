"""POST /users (registration) and POST /auth (login: OAuth2 password flow or JSON)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from advanced_alchemy.extensions.litestar.providers import create_service_provider
from litestar import Request, Response, delete, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import JSONBody
from litestar.types import ControllerRouterHandler

from ekimo.bounds import STORABLE_TEXT, STORABLE_TEXT_RULE, is_storable
from ekimo.container import Container
from ekimo.docs import problems
from ekimo.errors import InvalidInput, Problem
from ekimo.problem_documents import problem_response
from ekimo.users.auth import SECURITY_SCHEME, claims_of, login_rate_limit, principals_of
from ekimo.users.guards import PUBLIC, allow
from ekimo.users.login import log_in, log_out
from ekimo.users.principals import Principal
from ekimo.users.registration import caller_of, create_account, signup_rate_limit
from ekimo.users.roles import SIGNED_IN
from ekimo.users.rules import InvalidInputError
from ekimo.users.schemas import (
    PASSWORD_RULE,
    USERNAME_RULE,
    LoginRequest,
    RegisterRequest,
    RegisterResponse,
    TokenResponse,
    UserOut,
)
from ekimo.users.service import UserService

logger = logging.getLogger(__name__)

_RULES = {"username": USERNAME_RULE, "password": PASSWORD_RULE}
_MISSING_FIELD = re.compile(r"missing required field `(\w+)`")
_AT_FIELD = re.compile(r"at `\$\.(\w+)`")
# Advanced Alchemy's provider: a `UserService` per request on the app's `db_session`.
_SERVICES = {"users": Provide(create_service_provider(UserService))}


def _field_problem(error: dict[str, Any]) -> tuple[str, str]:
    """(field, message to show) for one of Litestar's validation error entries."""
    message = str(error.get("message", "invalid value"))
    key = str(error.get("key", ""))
    if missing := _MISSING_FIELD.search(message):
        return missing.group(1), f"{missing.group(1)} is required"
    if key in _RULES:
        if message.startswith("Expected `str`,"):
            return key, f"{key} must be a string"
        return key, _RULES[key]
    return key or "body", f"{key or 'body'}: {message}"


def _validation_as_422(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Body validation failures of POST /users are 422s naming the field, not Litestar's 400."""
    errors = cast("list[object]", exc.extra) if isinstance(exc.extra, list) else []
    entries = [cast("dict[str, Any]", e) for e in errors if isinstance(e, dict)]
    fields = [_field_problem(e) for e in entries] or [
        ("body", "the body must be a JSON object with username and password")
    ]
    problem = InvalidInputError(fields[0][0], "; ".join(m for _, m in fields))
    return problem_response(request, problem)


@post(
    "/users",
    opt=PUBLIC,
    tags=["accounts"],
    summary="Register an account",
    status_code=201,
    responses=problems(400, 401, 403, 409, 422, 429),
    exclude_from_auth=True,
    security=[{}, {SECURITY_SCHEME: []}],
    exception_handlers={ValidationException: _validation_as_422},
    dependencies=_SERVICES,
    middleware=[signup_rate_limit.middleware],
)
async def register(
    request: Request[Any, Any, Any],
    data: JSONBody[RegisterRequest],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
) -> RegisterResponse:
    """Create an account. With `REGISTRATION=open` anyone may, and gets `REGISTRATION_ROLE`;
    with `closed` only an admin (bearer token) may. Only an admin may choose `role`. The first
    account of a database is an admin. 409 when the name exists (ignoring case); 422 names a
    field to fix."""
    caller = await caller_of(request, container)
    user = await create_account(users, container, caller, data.username, data.password, data.role)
    return RegisterResponse(user=msgspec.convert(user, UserOut, from_attributes=True))


def _login_schema() -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["username", "password"],
        properties={
            "username": Schema(type=OpenAPIType.STRING, pattern=STORABLE_TEXT),
            "password": Schema(type=OpenAPIType.STRING),
        },
    )


@dataclass
class _LoginOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="OAuth2 password flow form, or the same fields as JSON.",
            content={
                "application/x-www-form-urlencoded": OpenAPIMediaType(schema=_login_schema()),
                "application/json": OpenAPIMediaType(schema=_login_schema()),
            },
        )


async def _credentials(request: Request[Any, Any, Any]) -> tuple[str, str]:
    media_type = request.content_type[0]
    if media_type == "application/json":
        try:
            body = msgspec.json.decode(await request.body(), type=LoginRequest)
        except msgspec.ValidationError as exc:
            named = _MISSING_FIELD.search(str(exc)) or _AT_FIELD.search(str(exc))
            field = named.group(1) if named else "body"
            raise InvalidInputError(field, f"login body: {exc}") from None
        except msgspec.DecodeError:
            raise InvalidInputError("body", "the body is not valid JSON") from None
        return body.username, body.password
    if media_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        values: list[str] = []
        for field in ("username", "password"):
            value = form.get(field)
            if not isinstance(value, str):
                raise InvalidInputError(field, f"{field} is required")
            if field == "username" and not is_storable(value):
                raise InvalidInputError(field, f"{field} {STORABLE_TEXT_RULE}")
            values.append(value)
        return values[0], values[1]
    raise Problem(
        "send application/x-www-form-urlencoded (username, password) or JSON",
        status=415,
        title="Unsupported Media Type",
    )


@post(
    "/auth",
    opt=PUBLIC,
    tags=["accounts"],
    summary="Log in: get a bearer token",
    status_code=200,
    responses=problems(400, 401, 415, 422, 429),
    exclude_from_auth=True,
    security=[{}],
    middleware=[login_rate_limit.middleware],
    operation_class=_LoginOperation,
    dependencies=_SERVICES,
)
async def login(
    request: Request[Any, Any, Any],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
) -> TokenResponse:
    """Exchange username and password for an access token (at most 10 attempts a minute)."""
    username, password = await _credentials(request)
    address = request.client.host if request.client else None
    access = await log_in(users, container, username, password, address)
    return TokenResponse(access_token=access.token, expires_in=access.expires_in)


@delete(
    "/auth",
    opt=allow(SIGNED_IN),
    tags=["accounts"],
    summary="Log out: end this access token",
    status_code=204,
    responses=problems(400, 401),
)
async def logout(
    request: Request[Principal, str, Any], container: NamedDependency[Container]
) -> None:
    """The bearer token of this request stops working: at once in this process, within 5 s in
    the others. The account's other tokens and its API keys go on working."""
    claims = claims_of(container, request.auth) if request.user.key_id is None else None
    if claims is None:
        raise InvalidInput(
            "DELETE /auth ends an access token; an API key is revoked with DELETE /api-keys/{id}"
        )
    await log_out(container, principals_of(request.app.state), claims)


routes: list[ControllerRouterHandler] = [register, login, logout]
