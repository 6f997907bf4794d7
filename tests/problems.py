"""Checks shared by the tests of refused requests: a problem document with the expected status."""

from __future__ import annotations

from typing import Any

import httpx

# msgspec's messages for the bounds every route shares (`ekimo.params`).
BIGINT_BOUND = "Expected `int` <= 9223372036854775807"
NO_NUL = "Expected `str` matching regex '^[^\\\\x00]*$'"


def problem_of(response: httpx.Response, status: int) -> Any:
    """The body of `response`, once it is a problem document of `status` that carries the
    request's id (the `X-Request-ID` header's); returned without it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    document = response.json()
    # An app without ekimo's request ids (a test's bare Litestar app) has none to carry.
    assert document.pop("request_id", None) == response.headers.get("x-request-id")
    return document
