"""The shared bounds (`ekimo.bounds`, `ekimo.params`, `ekimo.downloads`): every integer a path
or a query carries is bounded, and the OpenAPI schema says so; downloads fail before their
first byte."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from ekimo.bounds import MAX_BIGINT, STORABLE_TEXT, in_range, instant
from ekimo.downloads import started
from ekimo.errors import Unprocessable


async def test_every_integer_in_a_path_or_a_query_has_bounds_the_schema_states(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/docs/openapi.json")).json()
    unbounded: list[str] = []
    integers = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                schema = parameter["schema"]
                where = f"{method.upper()} {path} {parameter['in']} {parameter['name']}"
                if schema.get("type") == "integer":
                    integers += 1
                    # A float bound of 2**63 - 1 reads 2**63, past bigint: it must be exact.
                    maximum, minimum = schema.get("maximum"), schema.get("minimum")
                    if maximum is None or maximum > MAX_BIGINT:
                        unbounded.append(f"{where}: maximum {maximum!r}")
                    if minimum is None:
                        unbounded.append(f"{where}: no minimum")
                elif parameter["in"] == "path" and "pattern" not in schema:
                    unbounded.append(f"{where}: a text path parameter without a pattern")
    assert integers > 10
    assert unbounded == []


async def test_free_text_filters_state_that_they_take_no_nul(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/docs/openapi.json")).json()["paths"]

    def pattern(path: str, name: str) -> str | None:
        parameters = paths[path]["get"]["parameters"]
        return next(p["schema"].get("pattern") for p in parameters if p["name"] == name)

    assert pattern("/products", "q") == STORABLE_TEXT
    assert pattern("/products/export", "q") == STORABLE_TEXT
    assert pattern("/audit", "actor") == STORABLE_TEXT
    assert pattern("/audit", "action") == STORABLE_TEXT


def test_an_instant_is_in_range_when_ekimo_can_read_it_back_in_utc() -> None:
    east, west = timezone(timedelta(hours=14)), timezone(timedelta(hours=-14))
    assert in_range(datetime(9999, 12, 31, 23, 59, 59))  # naive: UTC
    assert in_range(datetime(9999, 12, 31, 23, 59, 59, tzinfo=east))
    assert not in_range(datetime(9999, 12, 31, 23, 59, 59, tzinfo=west))
    assert not in_range(datetime(1, 1, 1, tzinfo=east))
    assert instant(datetime(2025, 1, 1, 14, tzinfo=east), "at") == datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(Unprocessable) as refused:
        instant(datetime(1, 1, 1, tzinfo=east), "at")
    assert (refused.value.status, refused.value.extra) == (422, {"field": "at"})


async def _chunks(*chunks: bytes, fail_first: bool = False) -> AsyncGenerator[bytes]:
    if fail_first:
        raise Unprocessable("the query failed")
    for chunk in chunks:
        yield chunk


async def _read(stream: AsyncGenerator[bytes]) -> list[bytes]:
    return [chunk async for chunk in stream]


async def test_a_started_download_fails_before_its_first_byte_or_yields_everything() -> None:
    with pytest.raises(Unprocessable):
        await started(_chunks(b"a", fail_first=True))
    assert await _read(await started(_chunks(b"a", b"b", b"c"))) == [b"a", b"b", b"c"]
    assert await _read(await started(_chunks())) == [b""]
