"""The bounds of what a request may put in a path or a query string, shared by every route
(the values themselves: `ekimo.bounds`).

Declared on the parameter, a bound is checked by Litestar before the handler runs, so no value
out of bounds reaches the database, and shown in the OpenAPI schema as `minimum`, `maximum` or
`pattern`. `problem_documents` answers a value out of bounds: 404 when it is in the path (the
path names nothing), 422 when it is in the query.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar.params import PathParameter, QueryParameter

from ekimo.bounds import MAX_BIGINT, STORABLE_TEXT


def _exact_maximum(maximum: int) -> dict[str, Any]:
    # Litestar writes bounds into the schema as floats, and 2**63 - 1 as a float is 2**63: one
    # past the bound. The integer itself, so that the schema states the bound exactly.
    return {"maximum": maximum}


Id = Annotated[
    int,
    PathParameter(
        ge=1,
        le=MAX_BIGINT,
        schema_extra=_exact_maximum(MAX_BIGINT),
        description="An id (PostgreSQL bigint); one that names nothing is a 404.",
    ),
]
"""An id in the path (`/imports/{import_id:int}`)."""

Offset = Annotated[
    int,
    QueryParameter(
        ge=0,
        le=MAX_BIGINT,
        schema_extra=_exact_maximum(MAX_BIGINT),
        description="How many items to skip (a page past the end is empty).",
    ),
]
"""A page's offset in the query string."""


def page_size(maximum: int) -> QueryParameter:
    """The bounds of a page's `limit`: `limit: Annotated[int, page_size(100)] = 20`."""
    return QueryParameter(ge=1, le=maximum, description=f"Items per page, 1 to {maximum}.")


def text(description: str) -> QueryParameter:
    """A free-text query parameter: `q: Annotated[str | None, text("...")] = None`."""
    return QueryParameter(pattern=STORABLE_TEXT, description=description)
