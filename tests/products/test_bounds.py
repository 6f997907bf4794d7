"""What PostgreSQL cannot take never reaches it from the catalog's routes: text with NUL and
instants out of range are 422s, a path that is no barcode names nothing (404), and an export
answers its errors before its first byte (issue 15)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ekimo.container import Container
from ekimo.errors import Unavailable
from ekimo.products import export
from tests.problems import NO_NUL, problem_of
from tests.products.conftest import insert_products, numbered

Client = httpx.AsyncClient


async def test_a_nul_in_the_name_filter_is_a_422(
    client: Client, auth_headers: dict[str, str]
) -> None:
    url = "/products?q=8%F3%92%9D%9CV%C3%B7%00~&state=synced&offset=530046"

    response = await client.get(url, headers=auth_headers)

    assert problem_of(response, 422) == {
        "status": 422,
        "title": "Unprocessable Content",
        "detail": f"Validation failed for GET {url}: q: {NO_NUL}",
        "extra": [{"message": NO_NUL, "key": "q", "source": "query"}],
    }


async def test_an_export_with_a_nul_in_the_name_filter_is_a_422_before_any_byte(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    await insert_products(container, numbered(3))

    response = await client.get("/products/export?q=%00", headers=auth_headers)

    assert problem_of(response, 422) == {
        "status": 422,
        "title": "Unprocessable Content",
        "detail": f"Validation failed for GET /products/export?q=%00: q: {NO_NUL}",
        "extra": [{"message": NO_NUL, "key": "q", "source": "query"}],
    }


async def test_an_export_whose_query_fails_answers_a_problem_not_a_cut_download(
    client: Client, auth_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(*_: Any, **__: Any) -> AsyncIterator[list[Any]]:
        raise Unavailable("the database is unavailable")
        yield []  # an async generator, as the real one

    monkeypatch.setattr(export, "product_rows", unavailable)

    response = await client.get("/products/export", headers=auth_headers)

    assert problem_of(response, 503) == {
        "status": 503,
        "title": "Service Unavailable",
        "detail": "the database is unavailable",
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"updated_since": "9999-12-31T23:59:59-14:00"}, "updated_since"),
        ({"updated_since": "0001-01-01T00:00:00+14:00"}, "updated_since"),
    ],
)
@pytest.mark.parametrize("path", ["/products", "/products/export"])
async def test_an_instant_out_of_range_in_utc_is_a_422(
    client: Client, auth_headers: dict[str, str], path: str, params: dict[str, str], field: str
) -> None:
    response = await client.get(path, params=params, headers=auth_headers)

    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["title"], body["field"]) == ("Unprocessable Content", field)
    assert body["detail"] == (
        f"{field}: {params[field]} must be between 0001-01-01T00:00:00Z and "
        "9999-12-31T23:59:59.999999Z in UTC"
    )


@pytest.mark.parametrize("barcode", ["%00", "12a", "123456789012345"])
async def test_a_path_that_is_no_barcode_names_nothing(
    client: Client, auth_headers: dict[str, str], barcode: str
) -> None:
    response = await client.get(f"/products/{barcode}", headers=auth_headers)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_the_largest_offset_is_an_empty_page(
    client: Client, auth_headers: dict[str, str], container: Container
) -> None:
    await insert_products(container, numbered(2))
    response = await client.get(
        "/products", params={"offset": 2**63 - 1, "limit": 1000}, headers=auth_headers
    )
    assert response.status_code == 200, response.text
    assert (response.json()["items"], response.json()["total"]) == ([], 2)
