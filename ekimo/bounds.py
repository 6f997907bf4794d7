"""What PostgreSQL and ekimo can take, as values: integers within bigint, text without NUL,
instants ekimo can read back (years 1 to 9999 in UTC).

Free of the web stack, so that the request schemas, the services and the CLI check values with
the same rules; `ekimo.params` declares them on the routes' parameters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

from ekimo.errors import Unprocessable

# PostgreSQL's bigint: every id column, and the largest OFFSET a query takes.
MAX_BIGINT = 2**63 - 1

# Text PostgreSQL can store: anything but NUL. No other character needs refusing: a query
# string's or a path's bytes that are not UTF-8 arrive as U+FFFD, and a JSON body cannot carry
# a lone surrogate (msgspec refuses it as malformed).
STORABLE_TEXT = r"^[^\x00]*$"
STORABLE_TEXT_RULE = "must not contain the NUL character (PostgreSQL cannot store it)"

StorableText = Annotated[str, msgspec.Meta(pattern=STORABLE_TEXT)]
"""A text field of a JSON body that is stored (msgspec checks it while decoding)."""


def is_storable(value: str) -> bool:
    """Whether PostgreSQL can store `value`, for text read without a schema (a form field)."""
    return "\x00" not in value


# The instants Python, and so ekimo, can represent. PostgreSQL stores wider ones, which could
# then never be read back: "9999-12-31T23:59:59-14:00" is a valid ISO 8601 time in year 10000.
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
INSTANT_RULE = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in UTC"


def in_range(value: datetime) -> bool:
    """Whether `value` (naive: UTC) is an instant between `EARLIEST` and `LATEST`."""
    return value.tzinfo is None or EARLIEST <= value <= LATEST


def instant(value: datetime, field: str) -> datetime:
    """`value` in UTC (naive means UTC); `Unprocessable` naming `field` when it is out of range.

    An instant's bound depends on its offset, which no schema states: checked where it is used.
    """
    if not in_range(value):
        raise Unprocessable(f"{field}: {value.isoformat()} {INSTANT_RULE}", extra={"field": field})
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
