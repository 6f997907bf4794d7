"""The app's one mapping from exceptions to problem documents (RFC 9457): a `Problem`, Litestar's
own client errors, and anything unexpected (a logged 500 that reveals nothing)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from ekimo.errors import Problem

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


def _internal_error(exc: Exception) -> ProblemDetailsException:
    logger.exception("unhandled error", exc_info=exc)
    return ProblemDetailsException(status_code=500, detail="Internal server error")


def _respond(request: Request[Any, Any, Any], exc: ProblemDetailsException) -> Response[Any]:
    """Every problem document has a `title` (the status phrase unless the raiser chose one)."""
    if exc.title is None:
        exc.title = HTTPStatus(exc.status_code).phrase
    return exc.to_response(request)


def problem_response(request: Request[Any, Any, Any], problem: Problem) -> Response[Any]:
    """The problem document of `problem`, for a route-level exception handler, which must
    answer rather than raise."""
    return _respond(request, _from_problem(problem))


def problem_details_plugin() -> ProblemDetailsPlugin:
    """The app's one mapping from exceptions to problem documents."""
    return ProblemDetailsPlugin(
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
