"""Errors on a console page answer with a page, never a JSON document or a traceback: the
problem's detail (what to fix), or a request to log in, or a 'try again' for an outage."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.response import Redirect

from ekimo import request_ids
from ekimo.db import UNMIGRATED, is_unavailable, is_unmigrated
from ekimo.errors import RETRY_AFTER_SECONDS, Problem
from ekimo.users.guards import NotSignedIn
from ekimo.web.pages import render
from ekimo.web.session import CONSOLE_PATH, signed_out

logger = logging.getLogger(__name__)

_TITLES = {
    400: "That request could not be understood",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported",
    422: "Cannot be taken",
    429: "Too many attempts",
    503: "Unavailable for a moment",
}
CSRF_REFUSAL = (
    "The form had expired or came from another site. Go back, reload the page and send it again."
)


def login_redirect(request: Request[Any, Any, Any]) -> Response[Any]:
    """To the log-in page, back here afterwards (a GET's own path; a post's page is unknown)."""
    back = request.url.path if request.method == "GET" else CONSOLE_PATH
    query = request.url.query
    if request.method == "GET" and query:
        back = f"{back}?{query}"
    target = f"{CONSOLE_PATH}/login?{urlencode({'next': back})}"
    return signed_out(Redirect(path=target, status_code=303), request)


def _status_and_message(exc: Exception) -> tuple[int, str, dict[str, str]]:
    if isinstance(exc, Problem):
        return exc.status, exc.detail, dict(exc.headers or {})
    if isinstance(exc, PermissionDeniedException) and "CSRF" in str(exc.detail):
        return 403, CSRF_REFUSAL, {}
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), dict(exc.headers or {})
    if is_unavailable(exc):
        return (
            503,
            "The database is unavailable; nothing was written. Try again in a few seconds.",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if is_unmigrated(exc):
        logger.error("database not migrated: %s", exc.__class__.__name__)
        message = f"{UNMIGRATED[0].upper()}{UNMIGRATED[1:]}; nothing was written."
        return 503, message, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return 500, "", {}


def render_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The console's answer to anything a page raises."""
    if isinstance(exc, NotSignedIn | NotAuthorizedException):
        return login_redirect(request)
    status, message, headers = _status_and_message(exc)
    if status >= 500 and status != 503:
        logger.exception("console page failed: %s %s", request.method, request.url.path)
        message = "Something went wrong on our side. Try again; if it keeps failing, tell us."
    headers = {k: v for k, v in headers.items() if k.lower() in ("retry-after",)}
    return render(
        request,
        "error.html",
        status_code=status,
        headers=headers,
        title=_TITLES.get(status, "Something went wrong"),
        message=message,
        status=status,
        request_id=request_ids.current(),
    )
