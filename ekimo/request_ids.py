"""Request ids: every HTTP request gets one (a sane incoming `X-Request-ID` is kept), echoed in
the response, and readable anywhere the request's work runs (log lines, problem documents, the
rows it creates, the jobs it queues) through `current()`."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI's import path uses this module without the web stack
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
# What a proxy or a client may send: ids, UUIDs and trace ids, nothing that could forge a log
# line or a header (no spaces, quotes or control characters).
_SANE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current() -> str | None:
    """The id of the request (or job) this code runs for, if any."""
    return _current.get()


def new() -> str:
    # 128 random bits as 32 hex digits, like a UUID's hex without building one.
    return os.urandom(16).hex()


def job_meta() -> dict[str, str]:
    """What a job queued now carries of its request (its worker binds it: `bind_job`)."""
    request_id = _current.get()
    return {"request_id": request_id} if request_id else {}


def bind_job(meta: dict[str, object] | None) -> None:
    """Run a job under the id of the request that queued it, if any."""
    request_id = (meta or {}).get("request_id")
    _current.set(request_id if isinstance(request_id, str) else None)


def sane(value: str | None) -> str | None:
    return value if value is not None and _SANE.fullmatch(value) else None


def with_request_ids(app: ASGIApp) -> ASGIApp:
    """Give every HTTP request an id before anything else runs, and echo it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = sane(value.decode("latin-1"))
                break
        if request_id is None:
            request_id = new()
        token = _current.set(request_id)
        raw = request_id.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if any(h[0].lower() == b"x-request-id" for h in headers):
                    headers = [h for h in headers if h[0].lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", raw)]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            _current.reset(token)

    return middleware
