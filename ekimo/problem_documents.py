"""The app's one mapping from exceptions to problem documents (RFC 9457): a `Problem`, Litestar's
own client errors, and anything unexpected (a logged 500 that reveals nothing)."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any, cast

from litestar import Request, Response
from litestar.config.app import AppConfig
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from ekimo import request_ids
from ekimo.db import UNMIGRATED, is_unavailable, is_unmigrated
from ekimo.errors import Problem, Unprocessable

logger = logging.getLogger(__name__)


def _from_problem(exc: Problem) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=exc.status,
        title=exc.title or HTTPStatus(exc.status).phrase,
        detail=exc.detail,
        extra=exc.extra,
        headers=exc.headers,
    )


def _from_http_exception(exc: HTTPException) -> ProblemDetailsException:
    """Litestar's own errors (a bad query parameter, malformed JSON, an unknown path) as problem
    documents whose `detail` says what to fix; the plugin's default puts it in `title`."""
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if exc.detail != phrase else ""
    if isinstance(exc.extra, list):  # a ValidationException: [{"key", "message", "source"}]
        fields = [
            f"{item['key']}: {item['message']}"
            for item in exc.extra
            if isinstance(item, dict) and "key" in item and "message" in item
        ]
        if fields:
            detail = f"{detail}: {'; '.join(fields)}" if detail else "; ".join(fields)
    return ProblemDetailsException(
        status_code=exc.status_code,
        title=phrase,
        detail=detail or phrase,
        extra=exc.extra,
        headers=exc.headers,
    )


# How msgspec words a value of the right type outside its declared bounds (`ge`, `le`,
# `pattern`, lengths: `ekimo.params`), as Litestar passes it on: "Expected `int` <= 100".
# A value of the wrong type reads "Expected `int`, got `str`"; an unknown one "Invalid enum value".
_OUT_OF_BOUNDS = re.compile(
    r"Expected `[^`]+` (?:[<>]=?|matching regex|of length|that's a multiple)"
)


def _validation_problem(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A parameter or field Litestar refused. Its status says what is wrong: 404 when it is in
    the path (an id out of range names nothing, as a path Litestar cannot parse does), 422 when
    every value has the right type but is out of its bounds (an offset beyond bigint, text with
    NUL), 400 when something is malformed (not a number, not one of the values)."""
    problem = _from_http_exception(exc)
    raw = cast("list[object]", exc.extra) if isinstance(exc.extra, list) else []
    errors = [cast("dict[str, Any]", e) for e in raw if isinstance(e, dict)]
    in_path = [e for e in errors if e.get("source") == "path"]
    if in_path:
        problem.status_code = 404
        problem.title = HTTPStatus.NOT_FOUND.phrase
        reasons = "; ".join(f"{e.get('key')}: {e.get('message')}" for e in in_path)
        problem.detail = f"nothing at {request.url.path} ({reasons})"
    elif errors and all(_OUT_OF_BOUNDS.match(str(e.get("message", ""))) for e in errors):
        problem.status_code = 422
        problem.title = Unprocessable.title
    return _respond(request, problem)


# How long a client should wait before trying again when the database is unreachable.
RETRY_AFTER_SECONDS = 5


def _internal_error(exc: Exception) -> ProblemDetailsException:
    if is_unavailable(exc):
        # Not a bug in the request: the database is restarting or gone. Whatever the request
        # was writing was rolled back with its transaction.
        logger.warning("database unavailable: %s", exc.__class__.__name__)
        return ProblemDetailsException(
            status_code=503,
            title="Service Unavailable",
            detail="the database is unavailable; nothing was written. Try again in a few seconds",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if is_unmigrated(exc):
        # Deployed before its migrations ran: the operator's to fix, said in one line.
        logger.error("database not migrated: %s", exc.__class__.__name__)
        return ProblemDetailsException(
            status_code=503,
            title="Service Unavailable",
            detail=f"{UNMIGRATED}; nothing was written",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    logger.exception("unhandled error", exc_info=exc)
    return ProblemDetailsException(status_code=500, detail="Internal server error")


def _respond(request: Request[Any, Any, Any], exc: ProblemDetailsException) -> Response[Any]:
    """Every problem document has a `title` (the status phrase unless the raiser chose one)."""
    if exc.title is None:
        exc.title = HTTPStatus(exc.status_code).phrase
    return _stamped(exc.to_response(request))


def _stamped(response: Response[Any]) -> Response[Any]:
    """The request's id in its problem document: what a user quotes, found in the logs."""
    request_id = request_ids.current()
    content: object = response.content
    if request_id is not None and isinstance(content, dict):
        cast("dict[str, object]", content)["request_id"] = request_id
    return response


def _stamping(handler: Any) -> Any:
    def stamped(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        return _stamped(handler(request, exc))

    return stamped


def problem_response(request: Request[Any, Any, Any], problem: Problem) -> Response[Any]:
    """The problem document of `problem`, for a route-level exception handler, which must
    answer rather than raise."""
    return _respond(request, _from_problem(problem))


class _ProblemDocuments(ProblemDetailsPlugin):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config = super().on_app_init(app_config)
        # Its own handler, not an entry of the map: its 404 names the request's path.
        # Typed by Litestar with a Request whose parameters it leaves unknown.
        handlers = app_config.exception_handlers  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        handlers[ValidationException] = _validation_problem
        # The plugin's handlers render mapped exceptions themselves: each is wrapped.
        mapped: dict[Any, Any] = dict(handlers)  # pyright: ignore[reportUnknownArgumentType]
        for kind, handler in mapped.items():
            handlers[kind] = _stamping(handler)
        return app_config


def problem_details_plugin() -> ProblemDetailsPlugin:
    """The app's one mapping from exceptions to problem documents."""
    return _ProblemDocuments(
        ProblemDetailsConfig(
            exception_handler=_respond,
            enable_for_all_http_exceptions=True,
            exception_to_problem_detail_map={
                Problem: _from_problem,
                HTTPException: _from_http_exception,
                Exception: _internal_error,
            },
        )
    )
