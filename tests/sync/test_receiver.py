"""POST /products: ekimo as the external API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from ekimo.container import Container
from ekimo.sync import receiver
from tests.problems import problem_of
from tests.sync.conftest import versions


def item(barcode: str = "4006381333931", **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "barcode": barcode,
        "name": "Pencil",
        "price": "1.20",
        "quantity": "10.000",
        "last_updated": "2025-03-01T10:00:00Z",
    }
    base.update(changes)
    return base


async def post(client: httpx.AsyncClient, headers: dict[str, str], *items: dict[str, Any]) -> Any:
    return await client.post("/products", json={"products": list(items)}, headers=headers)


async def test_received_products_are_created_and_stored_as_synced(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await post(client, auth_headers, item("1"), item("2", name="  Eraser "))
    assert response.status_code == 201, response.text
    assert response.json() == {
        "received": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "stale": 0,
    }
    assert await versions(container) == {"1": (1, 1), "2": (1, 1)}


async def test_prototype_shape_is_accepted(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    prototype = {
        "id": 17,
        "barcode": 4006381333931,
        "name": "Pencil",
        "price": 1.2,
        "quantity": 10,
        "last_updated": "2025-03-01 10:00:00",
        "is_synched": False,
    }
    response = await client.post("/products", json={"products": [prototype]}, headers=auth_headers)
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 1
    # The same product in the sender's shape is identical: naive time is UTC.
    again = await post(client, auth_headers, item())
    assert again.json() == {"received": 1, "created": 0, "updated": 0, "unchanged": 1, "stale": 0}


async def test_latest_last_updated_wins(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    await post(client, auth_headers, item("1"), item("2"), item("3"))
    response = await post(
        client,
        auth_headers,
        item("1"),  # identical
        item("2", price="1.5", last_updated="2025-03-02T10:00:00+00:00"),  # newer
        item("3", price="9", last_updated="2025-02-01T10:00:00Z"),  # older
        item("4"),  # new
    )
    assert response.json() == {
        "received": 4,
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "stale": 1,
    }
    assert await versions(container) == {"1": (1, 1), "2": (2, 2), "3": (1, 1), "4": (1, 1)}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"barcode": "12a"}, "barcode"),
        ({"barcode": "123456789012345"}, "barcode"),
        ({"barcode": -5}, "barcode"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"price": "-1"}, "price"),
        ({"price": "1.234"}, "price"),
        ({"price": "1e13"}, "price"),
        ({"price": "cheap"}, "price"),
        ({"price": None}, "price"),
        ({"quantity": "0.0001"}, "quantity"),
        ({"last_updated": "yesterday"}, "last_updated"),
        ({"name": 5}, "name"),
    ],
)
async def test_invalid_item_is_named_and_nothing_applied(
    container: Container,
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    bad: dict[str, Any],
    field: str,
) -> None:
    response = await post(client, auth_headers, item("1"), {**item("2"), **bad})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert (problem["status"], problem["title"]) == (422, "Unprocessable Entity")
    assert problem["detail"].startswith(f"nothing applied; fix products[1].{field}: ")
    assert problem["errors"][0]["index"] == 1
    assert problem["errors"][0]["field"] == field
    assert await versions(container) == {}  # the valid item was not applied either


async def test_missing_field_and_bad_json(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    no_name = item()
    del no_name["name"]
    response = await post(client, auth_headers, item("1"), no_name)
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "index": 1,
        "field": "name",
        "message": "required field missing",
    }
    garbage = await client.post(
        "/products",
        content=b"{not json",
        headers={**auth_headers, "Content-Type": "application/json"},
    )
    assert garbage.status_code == 422
    assert garbage.headers["content-type"].startswith("application/problem+json")
    assert garbage.json()["detail"].startswith("nothing applied; fix body: ")
    assert garbage.json()["errors"][0]["index"] is None


async def test_duplicate_barcodes_are_refused(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await post(client, auth_headers, item("1"), item("2"), item("1", name="Other"))
    assert response.status_code == 422
    assert "products[2].barcode" in response.json()["detail"]
    assert "products[0]" in response.json()["detail"]
    assert await versions(container) == {}


async def test_more_than_10000_items_is_413(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    items = [item(str(n)) for n in range(10_001)]
    response = await post(client, auth_headers, *items)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem_of(response, 413) == {
        "status": 413,
        "title": "Request Entity Too Large",
        "detail": "10001 products in one request; send at most 10000 per request",
        "max_items": 10_000,
    }
    assert await versions(container) == {}


async def test_other_spellings_take_the_general_path_to_the_same_rows(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    # The canonical shape is validated by msgspec alone; these spellings miss it and are
    # validated item by item, and must store exactly what the canonical spelling stores.
    first = await post(
        client,
        auth_headers,
        item("1", price="1e1", quantity=" 2.5 "),
        item("2", last_updated="2025-03-01T10:00:00"),  # naive: UTC
        item("3", last_updated="2025-03-01T12:00:00+02:00"),
        item(" 4 "),
    )
    assert first.status_code == 201, first.text
    assert first.json()["created"] == 4
    canonical = await post(
        client,
        auth_headers,
        item("1", price="10.00", quantity="2.500"),
        item("2"),
        item("3"),
        item("4"),
    )
    assert canonical.json() == {
        "received": 4,
        "created": 0,
        "updated": 0,
        "unchanged": 4,
        "stale": 0,
    }


@pytest.mark.parametrize(
    "name",
    [
        'Crayon "Rouge" \\ 10 cm, n\u00e9\t\u00e0 Z\u00fcrich \u2013 \u270f\ufe0f',
        "Two\nlines",  # a newline inside: the per-item path (columns are newline-joined)
        "x" * 255,
    ],
)
async def test_names_keep_their_characters(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str], name: str
) -> None:
    response = await post(client, auth_headers, item("1", name=name), item("2"))
    assert response.status_code == 201, response.text
    async with container.engine.connect() as conn:
        stored = await conn.scalar(text("SELECT name FROM products WHERE barcode = '1'"))
    assert stored == name


async def test_a_nul_character_in_a_name_is_named(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await post(client, auth_headers, item("1"), item("2", name="Pen\u0000cil"))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["index"] == 1
    assert response.json()["errors"][0]["field"] == "name"
    assert await versions(container) == {}


@pytest.mark.parametrize("count", [0, 10_000])
async def test_empty_and_largest_requests(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str], count: int
) -> None:
    response = await post(client, auth_headers, *[item(str(n)) for n in range(count)])
    assert response.status_code == 201, response.text
    assert response.json()["received"] == response.json()["created"] == count


async def test_concurrent_overlapping_requests_both_apply(container: Container) -> None:
    # Receivers do not exclude each other; rows are locked in barcode order, so two requests
    # listing the same barcodes in opposite orders cannot deadlock. Two sessions, so the two
    # upserts really run at the same time.
    codes = [str(n) for n in range(1, 3001)]
    older = [item(c, last_updated="2025-03-01T10:00:00Z") for c in codes]
    newer = [item(c, name="Newer", last_updated="2025-03-02T10:00:00Z") for c in reversed(codes)]

    async def apply(items: list[dict[str, Any]]) -> receiver.ReceiveResult:
        async with container.session() as session:
            return await receiver.receive(session, json.dumps({"products": items}).encode())

    first, second = await asyncio.gather(apply(older), apply(newer))
    assert first.received == second.received == 3000
    async with container.engine.connect() as conn:
        names = set((await conn.execute(text("SELECT name FROM products"))).scalars())
    assert names == {"Newer"}  # the latest last_updated wins, whichever request came first
    assert len(await versions(container)) == 3000
