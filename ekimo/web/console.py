"""The console's assembly: its pages under /ui, their session and CSRF protection, their error
pages, the stylesheet and script, and the template engine."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from litestar import Request, Router, get
from litestar.config.csrf import CSRFConfig
from litestar.exceptions import HTTPException, ValidationException
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.params import FromPath
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import (
    create_static_files_router,  # pyright: ignore[reportUnknownVariableType]
)
from litestar.template import TemplateConfig
from litestar.types import ASGIApp, ControllerRouterHandler, Receive, Scope, Send

from ekimo.container import Container
from ekimo.errors import Problem
from ekimo.users.guards import PUBLIC
from ekimo.web import (
    account_pages,
    catalog_pages,
    history_pages,
    import_pages,
    login_pages,
    sync_pages,
)
from ekimo.web.errors import render_error
from ekimo.web.session import CONSOLE_PATH, ConsoleSession

HERE = Path(__file__).parent
CSRF_COOKIE = "ekimo_csrf"
_UNSET = "unset"


class ConsoleCSRF(CSRFMiddleware):
    """Litestar's CSRF check (a cookie, and the same token in the form's `_csrf_token`), keyed
    by SECRET_KEY, which an embedded server only knows once the container has started."""

    def __init__(self, app: ASGIApp, container: Container) -> None:
        config = CSRFConfig(
            secret=_UNSET,
            cookie_name=CSRF_COOKIE,
            cookie_path=CONSOLE_PATH,
            cookie_httponly=True,
            cookie_samesite="lax",
        )
        super().__init__(app, config)
        self.container = container

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.config.secret == _UNSET:
            secret = self.container.settings.secret_key
            assert secret is not None, "the container fills the secret key"
            self.config = replace(self.config, secret=secret)
        await super().__call__(scope, receive, send)


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


@get("/", opt=PUBLIC, include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Redirect:
    """The console's first page: the catalog (which asks to log in first)."""
    query = request.url.query
    return Redirect(path=f"{CONSOLE_PATH}/catalog{'?' + query if query else ''}", status_code=303)


@get("/{rest:path}", opt=PUBLIC, include_in_schema=False)
async def not_a_page(rest: FromPath[str]) -> None:
    raise Problem(f"there is no page {CONSOLE_PATH}{rest}; use the links above", status=404)


def console_router(container: Container) -> Router:
    """Every console route, under /ui."""
    pages: list[ControllerRouterHandler] = [
        home,
        *login_pages.routes,
        *catalog_pages.routes,
        *import_pages.routes,
        *history_pages.routes,
        *sync_pages.routes,
        *account_pages.routes,
        create_static_files_router(
            path="/static", directories=[HERE / "static"], opt=PUBLIC, include_in_schema=False
        ),
        not_a_page,
    ]
    handlers: dict[Any, Any] = {
        kind: render_error for kind in (Exception, HTTPException, ValidationException, Problem)
    }
    return Router(
        path=CONSOLE_PATH,
        route_handlers=pages,
        middleware=[
            DefineMiddleware(ConsoleSession, container=container),
            DefineMiddleware(ConsoleCSRF, container=container),
        ],
        exception_handlers=handlers,
        include_in_schema=False,
    )


@get("/", opt=PUBLIC, include_in_schema=False)
async def root() -> Redirect:
    """http://host/ opens the console."""
    return Redirect(path=CONSOLE_PATH, status_code=303)


routes: list[ControllerRouterHandler] = [root]
