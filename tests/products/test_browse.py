"""GET /products and GET /products/{barcode}: pages, filters, sorting, 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from ekimo.container import Container
from ekimo.products.models import PendingProduct, Product
from tests.products.conftest import insert_products, numbered, product

Client = httpx.AsyncClient


async def test_pages_cover_the_catalog_once(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    await insert_products(container, numbered(25))
    seen: list[str] = []
    for offset in range(0, 30, 10):
        response = await client.get(
            "/products", params={"limit": 10, "offset": offset}, headers=auth_headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == 25
        assert (body["limit"], body["offset"]) == (10, offset)
        seen += [item["barcode"] for item in body["items"]]
    assert seen == [f"{i:013d}" for i in range(25)]

    past_end = await client.get("/products", params={"offset": 100}, headers=auth_headers)
    assert past_end.json() == {
        "items": [],
        "total": 25,
        "limit": 100,
        "offset": 100,
        "total_exact": True,
        "next": None,
    }


async def test_item_fields(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    await insert_products(
        container,
        [product("0001", "Kettle", price=Decimal("12.50"), quantity=Decimal("3.125"))],
    )
    body = (await client.get("/products", headers=auth_headers)).json()
    (item,) = body["items"]
    assert item["barcode"] == "0001"
    assert item["name"] == "Kettle"
    assert Decimal(item["price"]) == Decimal("12.50")
    assert Decimal(item["quantity"]) == Decimal("3.125")
    assert datetime.fromisoformat(item["last_updated"]) == datetime(2025, 7, 1, 12, tzinfo=UTC)
    assert (item["version"], item["synced_version"], item["state"]) == (1, 0, "pending")


@pytest.mark.parametrize("limit", [0, 1001, -1])
async def test_limit_out_of_range_is_a_problem(
    client: Client, auth_headers: dict[str, str], limit: int
) -> None:
    response = await client.get("/products", params={"limit": limit}, headers=auth_headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "limit" in response.text


async def test_limit_of_1000_is_accepted(client: Client, auth_headers: dict[str, str]) -> None:
    response = await client.get("/products", params={"limit": 1000}, headers=auth_headers)
    assert response.status_code == 200


async def test_filters(client: Client, auth_headers: dict[str, str], container: Container) -> None:
    await insert_products(
        container,
        [
            product("1", "Red Kettle"),
            product("2", "kettle, blue"),
            product("3", "Lamp"),
            product("4", "100% cotton_shirt"),
        ],
    )
    async with container.session() as session:
        await session.execute(
            delete(PendingProduct).where(
                PendingProduct.product_id.in_(
                    select(Product.id).where(Product.barcode.in_(["1", "3"]))
                )
            )
        )
        await session.execute(
            update(Product)
            .where(Product.barcode == "4")
            .values(updated_at=datetime(2020, 1, 1, tzinfo=UTC))
        )
        await session.commit()

    async def barcodes(**params: Any) -> list[str]:
        response = await client.get("/products", params=params, headers=auth_headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["items"])
        return [item["barcode"] for item in body["items"]]

    assert await barcodes(q="KETTLE") == ["1", "2"]
    assert await barcodes(q="%") == ["4"]  # wildcards match themselves
    assert await barcodes(q="d_K") == []
    assert await barcodes(barcode="3") == ["3"]
    assert await barcodes(barcode=["3", "1", "9"]) == ["1", "3"]
    assert await barcodes(state="pending") == ["2", "4"]
    assert await barcodes(state="synced") == ["1", "3"]
    assert await barcodes(state="synced", q="kettle") == ["1"]
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert await barcodes(updated_since=since) == ["1", "2", "3"]
    assert await barcodes(updated_since="2019-12-31T23:00:00") == ["1", "2", "3", "4"]

    synced = (await client.get("/products/1", headers=auth_headers)).json()
    assert (synced["version"], synced["synced_version"], synced["state"]) == (1, 1, "synced")


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"state": "done"}, "state"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"barcode": "12a"}, "barcode"),
        ({"sort": "colour"}, "sort"),
        ({"sort": "name,,barcode"}, "sort"),
        ({"sort": "name,-name"}, "sort"),
        ({"offset": "many"}, "offset"),
    ],
)
async def test_bad_filters_are_problems(
    client: Client, auth_headers: dict[str, str], params: dict[str, str], word: str
) -> None:
    response = await client.get("/products", params=params, headers=auth_headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert word in response.text


async def test_sort(client: Client, auth_headers: dict[str, str], container: Container) -> None:
    await insert_products(
        container,
        [
            product("3", "b", price=Decimal("5")),
            product("1", "c", price=Decimal("5")),
            product("2", "a", price=Decimal("9")),
        ],
    )

    async def barcodes(sort: str) -> list[str]:
        response = await client.get("/products", params={"sort": sort}, headers=auth_headers)
        assert response.status_code == 200, response.text
        return [item["barcode"] for item in response.json()["items"]]

    assert await barcodes("barcode") == ["1", "2", "3"]
    assert await barcodes("-barcode") == ["3", "2", "1"]
    assert await barcodes("name") == ["2", "3", "1"]
    assert await barcodes("-price,barcode") == ["2", "1", "3"]
    assert await barcodes("-price,-name") == ["2", "1", "3"]
    assert await barcodes("-updated_at") == ["2", "1", "3"]  # inserted together: id breaks ties


async def test_get_product_and_404(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    await insert_products(container, [product("00012345", "Bolt")])
    found = await client.get("/products/00012345", headers=auth_headers)
    assert found.status_code == 200
    assert found.json()["name"] == "Bolt"
    assert found.json()["state"] == "pending"

    for missing in ("12345", "999", "not-a-barcode"):
        response = await client.get(f"/products/{missing}", headers=auth_headers)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert missing in response.json()["detail"]
