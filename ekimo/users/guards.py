"""Deny by default: every route declares the permission it needs (`allow`) or that it is open
(`PUBLIC`); one app-wide guard checks it against the caller's role on every request, and a
route that declares neither answers 403 to everyone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, cast

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import OpenAPIResponse, Operation, PathItem, Reference
from litestar.routes import HTTPRoute

from ekimo.container import Container
from ekimo.errors import Problem
from ekimo.users.auth import Unauthorized, bearer_token, principals_of, resolve_request
from ekimo.users.principals import Principal
from ekimo.users.roles import Permission

PERMISSION_KEY = "permission"
PUBLIC_KEY = "public"
# Litestar's own OpenAPI pages and their assets: open, like /health.
_DOCS_PREFIX = "/docs"

PUBLIC: dict[str, Any] = {PUBLIC_KEY: True}


def allow(permission: Permission) -> dict[str, Any]:
    """A route's `opt`: callers whose role has `permission` may call it, nobody else."""
    return {PERMISSION_KEY: permission}


class Forbidden(Problem):
    status = 403


class NotSignedIn(Problem):
    status = 401


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The app-wide guard. Raises `Forbidden` naming what is missing. A coroutine though it
    never waits: Litestar runs a plain function guard in a thread, on every request."""
    if handler.opt.get(PUBLIC_KEY) is True or connection.scope["path"].startswith(_DOCS_PREFIX):
        return
    if isinstance(handler, HTTPRouteHandler) and handler.http_methods == {"OPTIONS"}:
        return  # Litestar's own answer to OPTIONS: the allowed methods, nothing more
    permission = handler.opt.get(PERMISSION_KEY)
    if not isinstance(permission, Permission):
        raise Forbidden("this route declares no permission, so nobody may call it")
    principal = cast("dict[str, Any]", connection.scope).get("user")
    if not isinstance(principal, Principal):
        raise NotSignedIn("this endpoint needs 'Authorization: Bearer <token>'")
    _check(principal, permission)


def _check(principal: Principal, permission: Permission) -> None:
    if not permission.allows(principal.role):
        holder = "this API key" if principal.key_id is not None else "your account"
        raise Forbidden(f"{permission.refusal}; {holder} has the {principal.role} role")


def admission(
    container: Container, permission: Permission
) -> Callable[[ASGIConnection[Any, Any, Any, Any]], Awaitable[None]]:
    """The check of a public route that shows more to some callers (GET /health?verbose=true),
    which the bearer-token middleware skips: the request's credential is resolved as the
    middleware would (401 when missing or invalid), then `permission` checked (403)."""

    async def admit(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        token = bearer_token(connection)
        if token is None:
            raise Unauthorized(f"{permission.refusal}: send 'Authorization: Bearer <token>'")
        principals = principals_of(connection.app.state)
        _check(await resolve_request(connection, principals, container, token), permission)

    return admit


def document_permissions(app: Litestar) -> None:
    """Each operation of the app's OpenAPI schema says the roles it needs and its 403."""
    schema = app.openapi_schema
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path_item = (schema.paths or {}).get(route.path_format)
        if not isinstance(path_item, PathItem):
            continue
        for handler in route.route_handlers:
            permission = handler.opt.get(PERMISSION_KEY)
            if not isinstance(permission, Permission):
                continue
            for method in handler.http_methods:
                operation = getattr(path_item, method.lower(), None)
                if isinstance(operation, Operation):
                    setattr(path_item, method.lower(), _documented(operation, permission))


def _documented(operation: Operation, permission: Permission) -> Operation:
    roles = ", ".join(sorted(role.value for role in permission.roles))
    note = f"**Roles:** {roles}."
    description = f"{operation.description}\n\n{note}" if operation.description else note
    responses = dict(operation.responses or {})
    unauthorized = responses.get("401")
    if "403" not in responses and isinstance(unauthorized, OpenAPIResponse | Reference):
        forbidden = unauthorized
        if isinstance(unauthorized, OpenAPIResponse):
            forbidden = replace(unauthorized, description=f"Forbidden: {permission.refusal}")
        responses["403"] = forbidden
    return replace(operation, description=description, responses=responses)
