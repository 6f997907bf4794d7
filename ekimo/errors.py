"""One error vocabulary: services and handlers raise a `Problem` (or a domain error derived from
it); `problem_documents` turns it into an HTTP answer, the CLI into a message. Kept free of the
web stack, so the command line can raise and catch these without loading it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Problem(Exception):
    """Something the caller has to fix (4xx) or wait out (503): an HTTP status, a title, a
    `detail` that says what to do, and extra members for the problem document."""

    status: int = 400
    title: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.extra = dict(extra) if extra is not None else None
        self.headers = dict(headers) if headers is not None else None


class InvalidInput(Problem):
    """A parameter or a field the caller sent is wrong; the detail names it."""

    status = 400


class Unprocessable(InvalidInput):
    """A value of the right form that cannot be taken: out of its range, or text PostgreSQL
    cannot store. The detail names it."""

    status = 422
    # RFC 9110's phrase; Python 3.11's HTTPStatus still has RFC 7231's "Unprocessable Entity".
    title = "Unprocessable Content"


class NotFound(Problem):
    status = 404


class Conflict(Problem):
    status = 409


# How long a client should wait before trying again after a 503.
RETRY_AFTER_SECONDS = 5


class Unavailable(Problem):
    """A dependency (the queue, the database) cannot take the request now, or the process is
    stopping: try again later (every 503 says when, in `Retry-After`)."""

    status = 503

    def __init__(
        self,
        detail: str,
        *,
        title: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})}
        super().__init__(detail, title=title, extra=extra, headers=retry)
