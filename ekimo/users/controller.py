"""POST /users (registration) and POST /auth (login: OAuth2 password flow or JSON)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import JSONBody
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo.container import Container
from ekimo.docs import problems
from ekimo.users.auth import login_rate_limit, unauthorized
from ekimo.users.rules import InvalidInputError, UsernameTakenError
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


def _invalid(field: str, message: str) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=422,
        title="Unprocessable Content",
        detail=message,
        extra={"field": field},
    )


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
    """Body validation failures of these routes are 422s naming the field, not Litestar's 400."""
    errors = cast("list[object]", exc.extra) if isinstance(exc.extra, list) else []
    entries = [cast("dict[str, Any]", e) for e in errors if isinstance(e, dict)]
    problems = [_field_problem(e) for e in entries] or [
        ("body", "the body must be a JSON object with username and password")
    ]
    return _invalid(problems[0][0], "; ".join(m for _, m in problems)).to_response(request)


@post(
    "/users",
    tags=["accounts"],
    summary="Register an account",
    status_code=201,
    responses=problems(400, 409, 422),
    exclude_from_auth=True,
    security=[{}],
    exception_handlers={ValidationException: _validation_as_422},
)
async def register(
    data: JSONBody[RegisterRequest],
    db_session: NamedDependency[AsyncSession],
    container: NamedDependency[Container],
) -> RegisterResponse:
    """Create an account. 409 when the name exists (ignoring case); 422 names a field to fix."""
    try:
        user = await UserService(db_session, container.settings).register(
            data.username, data.password
        )
    except InvalidInputError as exc:
        raise _invalid(exc.field, exc.message) from None
    except UsernameTakenError as exc:
        raise ProblemDetailsException(
            status_code=409, title="Conflict", detail=str(exc), extra={"field": "username"}
        ) from None
    logger.info("account created: id=%s username=%s", user.id, user.username)
    return RegisterResponse(
        user=UserOut(id=user.id, username=user.username, created_at=user.created_at)
    )


def _login_schema() -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["username", "password"],
        properties={
            "username": Schema(type=OpenAPIType.STRING),
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
            missing = _MISSING_FIELD.search(str(exc))
            field = missing.group(1) if missing else "body"
            raise _invalid(field, f"login body: {exc}") from None
        except msgspec.DecodeError:
            raise _invalid("body", "the body is not valid JSON") from None
        return body.username, body.password
    if media_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        values: list[str] = []
        for field in ("username", "password"):
            value = form.get(field)
            if not isinstance(value, str):
                raise _invalid(field, f"{field} is required")
            values.append(value)
        return values[0], values[1]
    raise ProblemDetailsException(
        status_code=415,
        title="Unsupported Media Type",
        detail="send application/x-www-form-urlencoded (username, password) or JSON",
    )


@post(
    "/auth",
    tags=["accounts"],
    summary="Log in: get a bearer token",
    status_code=200,
    responses=problems(400, 401, 415, 422, 429),
    exclude_from_auth=True,
    security=[{}],
    middleware=[login_rate_limit.middleware],
    operation_class=_LoginOperation,
)
async def login(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    container: NamedDependency[Container],
) -> TokenResponse:
    """Exchange username and password for an access token (at most 10 attempts a minute)."""
    username, password = await _credentials(request)
    service = UserService(db_session, container.settings)
    user = await service.authenticate(username, password)
    if user is None:
        raise unauthorized("wrong username or password")
    access = service.issue_token(user)
    return TokenResponse(access_token=access.token, expires_in=access.expires_in)


routes: list[ControllerRouterHandler] = [register, login]
