"""What every console page has: its template, the signed-in principal, what that principal may
do (the navigation and the buttons follow it; the server checks again on every post), and a
flash message carried in the query string after a redirect."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request
from litestar.response import Redirect, Template

from ekimo.users.principals import Principal
from ekimo.users.roles import (
    IMPORT,
    MANAGE_ACCOUNTS,
    OWN_ACCOUNT,
    READ_CATALOG,
    READ_IMPORTS,
    READ_SYNC,
    RUN_SYNC,
    Permission,
)
from ekimo.web.session import principal_of

# The permissions a page asks about by name (`can.import`, `can.manage_accounts`, ...).
_NAMED = (
    READ_CATALOG,
    READ_IMPORTS,
    READ_SYNC,
    IMPORT,
    RUN_SYNC,
    OWN_ACCOUNT,
    MANAGE_ACCOUNTS,
)


def abilities(principal: Principal | None) -> dict[str, bool]:
    """{permission name: whether the principal has it}."""
    return {p.name: principal is not None and p.allows(principal.role) for p in _NAMED}


def render(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    """The page `template` with the common context."""
    principal = principal_of(request)
    common: dict[str, Any] = {
        "principal": principal,
        "can": abilities(principal),
        "path": request.url.path,
        "notice": request.query_params.get("notice"),
    }
    return Template(
        template_name=template,
        context={**common, **context},
        status_code=status_code,
        headers=headers,
    )


def allowed(principal: Principal | None, permission: Permission) -> bool:
    return principal is not None and permission.allows(principal.role)


def redirect(path: str, *, notice: str | None = None, **query: object) -> Redirect:
    """A 303 to `path` (the browser then GETs it), with an optional notice to show there."""
    params = {k: str(v) for k, v in query.items() if v is not None and v != ""}
    if notice:
        params["notice"] = notice
    target = f"{path}?{urlencode(params)}" if params else path
    return Redirect(path=target, status_code=303)


def sentence(detail: str) -> str:
    """A service's detail ("x is the last active admin ...") as a sentence on a page."""
    text = detail.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."
