"""GET /products at scale (issue 16): the `next` cursor walks the catalog once in order, a bad
cursor is a problem document, `total` is exact up to a limit and a flagged estimate above it,
and the reads are served by the indexes of migration 0007."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select, text

from ekimo.container import Container
from ekimo.products import catalog
from ekimo.products.catalog import ProductQuery, count_up_to, plan_of
from ekimo.products.models import Product
from tests.problems import problem_of
from tests.products.conftest import BASE_TIME, insert_products, product

Client = httpx.AsyncClient


def _catalog_with_ties() -> list[dict[str, Any]]:
    """23 products whose prices, quantities, names and versions repeat (ties to break)."""
    rows: list[dict[str, Any]] = []
    for i in range(23):
        rows.append(
            product(
                f"{(i * 7) % 23:04d}",  # barcode order differs from the order of creation
                name=f"Item {'ABC'[i % 3]}",
                price=Decimal(i % 4) + Decimal("0.50"),
                quantity=Decimal(i % 2),
                last_updated=BASE_TIME + timedelta(minutes=i % 5),
                version=1 + i % 3,
            )
        )
    return rows


async def _walk(
    client: Client, headers: dict[str, str], params: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query = {**params, "limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/products", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next"]
        if cursor is None:
            return items
        assert len(body["items"]) == limit  # only a full page has a next one
    raise AssertionError("the walk did not end")


def _key(field: str) -> Callable[[dict[str, Any]], Any]:
    if field in ("price", "quantity"):
        return lambda item: Decimal(item[field])
    return lambda item: item[field]


SORTS = [
    "barcode",
    "-barcode",
    "price",
    "-price",
    "-version",
    "name,-price",
    "-quantity,last_updated",
    "-price,-name,quantity",
]


async def test_the_cursor_walks_every_product_once_in_order(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    await insert_products(container, _catalog_with_ties())
    for sort in SORTS:
        whole = await client.get(
            "/products", params={"sort": sort, "limit": 1000}, headers=auth_headers
        )
        expected = [item["barcode"] for item in whole.json()["items"]]

        walked = await _walk(client, auth_headers, {"sort": sort}, limit=4)

        assert [item["barcode"] for item in walked] == expected, sort
        assert len(set(expected)) == 23, sort
        terms = sort.split(",")
        keys = [tuple(_key(t.lstrip("-"))(item) for t in terms) for item in walked]
        for before, after in itertools.pairwise(keys):
            for term, a, b in zip(terms, before, after, strict=True):
                if a != b:
                    assert (a > b) if term.startswith("-") else (a < b), (sort, before, after)
                    break


async def test_ties_follow_the_first_keys_direction(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    """Equal keys come in the order of creation, reversed when the sort is descending."""
    await insert_products(container, [product(b, price=Decimal(1)) for b in ("3", "1", "2")])

    async def barcodes(sort: str) -> list[str]:
        response = await client.get("/products", params={"sort": sort}, headers=auth_headers)
        return [item["barcode"] for item in response.json()["items"]]

    assert await barcodes("price") == ["3", "1", "2"]
    assert await barcodes("-price") == ["2", "1", "3"]
    assert [i["barcode"] for i in await _walk(client, auth_headers, {"sort": "-price"}, 1)] == [
        "2",
        "1",
        "3",
    ]


async def test_the_cursor_keeps_the_filters_and_mixes_with_offset_pages(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    rows = _catalog_with_ties()
    await insert_products(container, rows)
    params = {"q": "item a", "sort": "-price"}
    whole = await client.get("/products", params={**params, "limit": 1000}, headers=auth_headers)
    expected = [item["barcode"] for item in whole.json()["items"]]
    assert len(expected) == 8

    walked = await _walk(client, auth_headers, params, limit=3)
    assert [item["barcode"] for item in walked] == expected

    # An offset page has a `next` too: the walk goes on from there.
    third = await client.get(
        "/products", params={**params, "limit": 3, "offset": 3}, headers=auth_headers
    )
    after = await client.get(
        "/products",
        params={**params, "limit": 10, "cursor": third.json()["next"]},
        headers=auth_headers,
    )
    assert [item["barcode"] for item in after.json()["items"]] == expected[6:]
    assert after.json()["next"] is None
    assert (after.json()["total"], after.json()["total_exact"]) == (8, True)


def _cursor(sort: str, values: list[Any]) -> str:
    raw = msgspec.json.encode((sort, values))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


BAD_CURSORS: list[tuple[dict[str, Any], str]] = [
    ({"cursor": "abc"}, "not a cursor of this list"),  # not base64 of anything
    ({"cursor": "bm90IGpzb24"}, "not a cursor of this list"),  # "not json"
    ({"cursor": _cursor("barcode", [])}, "not a cursor of this list"),
    ({"cursor": _cursor("barcode", [1])}, "not a cursor of this list"),
    ({"cursor": _cursor("barcode", ["1\x00"])}, "not a cursor of this list"),
    ({"cursor": _cursor("-price", ["NaN", 1]), "sort": "-price"}, "not a cursor"),
    ({"cursor": _cursor("-price", ["1.5", 2**63]), "sort": "-price"}, "not a cursor"),
    ({"cursor": _cursor("-price", ["1e999999", 1]), "sort": "-price"}, "not a cursor"),
    ({"cursor": _cursor("-price", ["1e-99999", 1]), "sort": "-price"}, "not a cursor"),
    ({"cursor": _cursor("-price", ["1.5", 1, 2]), "sort": "-price"}, "not a cursor"),
    (
        {"cursor": _cursor("last_updated", ["2025-07-01T12:00:00", 1]), "sort": "last_updated"},
        "not a cursor",  # no offset: not an instant
    ),
    (
        {
            "cursor": _cursor("last_updated", ["0001-01-01T00:00:00+14:00", 1]),
            "sort": "last_updated",
        },
        "not a cursor",  # before year 1 in UTC
    ),
    ({"cursor": _cursor("-price", ["1.5", 1])}, "sorted by '-price', not 'barcode'"),
    ({"cursor": _cursor("barcode", ["0001"]), "offset": 5}, "offset"),
]


async def test_a_bad_cursor_is_a_problem_that_says_what_to_fix(
    client: Client, auth_headers: dict[str, str]
) -> None:
    for params, says in BAD_CURSORS:
        response = await client.get("/products", params=params, headers=auth_headers)

        body = problem_of(response, 400)
        assert body["title"] == "Invalid query parameter", params
        assert says in body["detail"], (params, body)


@pytest.mark.parametrize("cursor", ["not+base64/url", "a" * 4097])
async def test_a_cursor_out_of_its_bounds_is_a_422(
    client: Client, auth_headers: dict[str, str], cursor: str
) -> None:
    response = await client.get("/products", params={"cursor": cursor}, headers=auth_headers)

    assert problem_of(response, 422)["extra"][0]["key"] == "cursor"


async def test_the_next_cursor_of_a_genuine_page_decodes(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    """Every sort key survives the round trip, microseconds and decimals included."""
    await insert_products(container, _catalog_with_ties())
    sort = "-last_updated,price,quantity,name,created_at,updated_at,version"
    first = await client.get("/products", params={"sort": sort, "limit": 5}, headers=auth_headers)
    assert first.status_code == 200, first.text
    walked = await _walk(client, auth_headers, {"sort": sort}, limit=5)
    assert [i["barcode"] for i in walked[:5]] == [i["barcode"] for i in first.json()["items"]]
    assert len({i["barcode"] for i in walked}) == 23


async def _analyze(container: Container) -> None:
    async with container.engine.connect() as conn:
        await conn.execute(text("ANALYZE products, pending_products"))
        await conn.commit()


async def test_total_is_exact_up_to_the_limit_then_a_flagged_estimate(
    client: Client,
    auth_headers: dict[str, str],
    container: Container,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog, "EXACT_TOTAL_LIMIT", 10)
    rows = [product(f"{i:04d}", name=f"Lamp {i:02d}") for i in range(40)]
    rows += [product(f"9{i:03d}", name=f"Kettle {i}", synced_version=1) for i in range(8)]
    await insert_products(container, rows)
    await _analyze(container)

    async def total(**params: Any) -> tuple[int, bool]:
        response = await client.get(
            "/products", params={"limit": 2, **params}, headers=auth_headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return body["total"], body["total_exact"]

    assert await total(q="kettle") == (8, True)
    assert await total(state="synced") == (8, True)
    assert await total(q="lamp 1") == (10, True)  # Lamp 10 to 19: at the limit, exact
    estimate, exact = await total()
    assert not exact
    assert 11 <= estimate <= 60
    pending, exact = await total(state="pending")
    assert not exact
    assert 35 <= pending <= 45  # the statistics on the state: close to the 40 pending
    # Estimates of statements with parameters (an instant, a list of barcodes).
    since, exact = await total(updated_since="2000-01-01T00:00:00Z", state="pending")
    assert (since >= 11, exact) == (True, False)
    barcodes = [f"{i:04d}" for i in range(12)]
    listed, exact = await total(barcode=barcodes)
    assert (listed >= 11, exact) == (True, False)


async def test_an_estimate_is_never_below_what_was_counted(
    client: Client,
    auth_headers: dict[str, str],
    container: Container,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Statistics not yet analyzed can expect fewer rows than were just counted."""

    async def outdated(*_: Any) -> dict[str, Any]:
        return {"Plan Rows": 0.0}

    monkeypatch.setattr(catalog, "EXACT_TOTAL_LIMIT", 3)
    monkeypatch.setattr(catalog, "plan_of", outdated)
    await insert_products(container, [product(f"{i:04d}") for i in range(10)])

    response = await client.get("/products", params={"limit": 1}, headers=auth_headers)

    assert (response.json()["total"], response.json()["total_exact"]) == (4, False)


# -- the plans: each read goes through its index -------------------------------------------------

# 20,000 products, one in a hundred pending.
FILL = """
WITH filled AS (
    INSERT INTO products (barcode, name, price, quantity, last_updated, version, created_at,
                          updated_at)
    SELECT lpad(g::text, 13, '0'),
           (ARRAY['Widget', 'Gadget', 'Bolt', 'Lamp'])[1 + g % 4] || ' ' || g,
           (g * 7919) % 100000 / 100.0, g % 5000,
           timestamptz '2025-07-01 12:00:00+00' + g * interval '1 minute',
           1, now(), now()
    FROM generate_series(1, 20000) g
    RETURNING id, barcode
)
INSERT INTO pending_products (product_id, barcode, version, synced_version)
SELECT id, barcode, 1, 0 FROM filled WHERE barcode::bigint % 100 = 0
"""


INDEXES = "SELECT indexname FROM pg_indexes WHERE tablename IN ('products', 'pending_products')"


def _indexes(plan: dict[str, Any]) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set[str]()
    for child in plan.get("Plans", []):
        found |= _indexes(child)
    return found


PLANNED = [
    (ProductQuery(q="Widget 99"), "ix_products_name_trgm"),
    (ProductQuery(sort="-price"), "ix_products_price"),
    (ProductQuery(sort="name"), "ix_products_name"),
    (ProductQuery(sort="-updated_at"), "ix_products_updated_at"),
    (ProductQuery(state="pending"), "uq_pending_products_barcode"),
]


async def test_the_reads_use_their_indexes(container: Container) -> None:
    async with container.engine.begin() as conn:
        await conn.execute(text(FILL))
        present = set((await conn.execute(text(INDEXES))).scalars())
    await _analyze(container)
    async with container.session() as session:
        for query, index in PLANNED:
            if index not in present:  # a server without pg_trgm (the embedded one): no index
                assert index == "ix_products_name_trgm"
                continue
            page = await plan_of(session, query.apply(select(Product)).limit(51))
            assert index in _indexes(page), (query, page)
            after = query.apply(select(Product)).where(query.read_cursor(_cursor_of(query)))
            assert index in _indexes(await plan_of(session, after.limit(51))), query
        pending = await plan_of(session, count_up_to(ProductQuery(state="pending"), 10_001))
        assert _relations(pending) == {"pending_products"}, pending  # not the whole catalog


def _relations(plan: dict[str, Any]) -> set[str]:
    found = {plan["Relation Name"]} if "Relation Name" in plan else set[str]()
    for child in plan.get("Plans", []):
        found |= _relations(child)
    return found


def _cursor_of(query: ProductQuery) -> str:
    """A cursor in the middle of the 20,000 products, for `query`'s sort."""
    values: dict[str, Any] = {
        "barcode": "0000000010000",
        "name": "Lamp 10003",
        "price": "500.00",
        "updated_at": "2025-07-01T12:00:00Z",
        "id": 10_000,
    }
    return _cursor(query.sort_text, [values[key.field] for key in query.order])
