"""The console's session: the access token POST /auth would give, kept in an HttpOnly cookie.

A request to /ui whose cookie holds a valid token runs as that token's principal (the same
resolution, cache and revocation rule as a bearer token); any other runs as nobody, and the
app-wide guard then refuses the pages that need a permission (the console answers by asking
to log in).
"""

from __future__ import annotations

import contextlib
from typing import Any

from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.middleware import MiddlewareProtocol
from litestar.types import ASGIApp, Receive, Scope, Send

from ekimo.container import Container
from ekimo.users.auth import Unauthorized, principals_of, resolve
from ekimo.users.principals import KEY_PREFIX, Principal

SESSION_COOKIE = "ekimo_session"
CONSOLE_PATH = "/ui"


class ConsoleSession(MiddlewareProtocol):
    """Sets `scope["user"]` from the session cookie when it is valid; never refuses itself."""

    def __init__(self, app: ASGIApp, container: Container) -> None:
        self.app = app
        self.container = container

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request[Any, Any, Any](scope)
            token = request.cookies.get(SESSION_COOKIE)
            # The cookie only ever holds an access token; an API key is for API clients.
            if token and not token.startswith(KEY_PREFIX):
                principals = principals_of(request.app.state)
                # Expired or revoked: nobody, and the guard asks for a new log-in.
                with contextlib.suppress(Unauthorized):
                    scope["user"] = await resolve(principals, self.container, token)
        await self.app(scope, receive, send)


def principal_of(request: Request[Any, Any, Any]) -> Principal | None:
    """Who is signed in to the console, if anyone."""
    user = dict(request.scope).get("user")
    return user if isinstance(user, Principal) else None


def _secure(request: Request[Any, Any, Any]) -> bool:
    # Behind https (uvicorn reads X-Forwarded-Proto from a trusted proxy) the cookie is Secure.
    return request.url.scheme == "https"


def session_cookie(request: Request[Any, Any, Any], token: str, max_age: int) -> Cookie:
    """The cookie that signs the browser in, expiring with its token."""
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path=CONSOLE_PATH,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def signed_out(response: Response[Any], request: Request[Any, Any, Any]) -> Response[Any]:
    """`response`, also deleting the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path=CONSOLE_PATH)
    return response
