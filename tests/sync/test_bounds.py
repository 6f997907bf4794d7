"""Numbers beyond what PostgreSQL stores in the sync API: an id names no run (404), an offset is
out of range (422); never a server error (issue 15)."""

from __future__ import annotations

import httpx

from tests.problems import BIGINT_BOUND, problem_of

Client = httpx.AsyncClient


async def test_a_run_id_beyond_bigint_is_a_404(
    client: Client, auth_headers: dict[str, str]
) -> None:
    path = "/sync/runs/21508636564506439362136600739840"

    response = await client.get(path, headers=auth_headers)

    assert problem_of(response, 404) == {
        "status": 404,
        "title": "Not Found",
        "detail": f"nothing at {path} (run_id: {BIGINT_BOUND})",
        "extra": [{"message": BIGINT_BOUND, "key": "run_id", "source": "path"}],
    }


async def test_an_offset_beyond_bigint_is_a_422(
    client: Client, auth_headers: dict[str, str]
) -> None:
    url = "/sync/runs?offset=72522360208244969832448"

    response = await client.get(url, headers=auth_headers)

    assert problem_of(response, 422) == {
        "status": 422,
        "title": "Unprocessable Content",
        "detail": f"Validation failed for GET {url}: offset: {BIGINT_BOUND}",
        "extra": [{"message": BIGINT_BOUND, "key": "offset", "source": "query"}],
    }


async def test_the_largest_offset_is_an_empty_page(
    client: Client, auth_headers: dict[str, str]
) -> None:
    response = await client.get(
        "/sync/runs", params={"offset": 2**63 - 1, "limit": 100}, headers=auth_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


async def test_a_received_time_that_would_be_past_year_9999_in_utc_is_refused(
    client: Client, auth_headers: dict[str, str]
) -> None:
    # A valid ISO 8601 time; in UTC it is in year 10000, which no product could be read back with.
    item = {
        "barcode": "1",
        "name": "Kettle",
        "price": "1.00",
        "quantity": "1",
        "last_updated": "9999-12-31T23:59:59-14:00",
    }

    response = await client.post("/products", json={"products": [item]}, headers=auth_headers)

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {
            "index": 0,
            "field": "last_updated",
            "message": "'9999-12-31T23:59:59-14:00' must be between 0001-01-01T00:00:00Z and "
            "9999-12-31T23:59:59.999999Z in UTC",
        }
    ]
    catalog = await client.get("/products", headers=auth_headers)
    assert catalog.status_code == 200, catalog.text
    assert catalog.json()["total"] == 0
