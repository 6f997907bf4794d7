"""Ids beyond what PostgreSQL stores name no import: 404, never a server error (issue 15)."""

from __future__ import annotations

import httpx
import pytest

from tests.problems import BIGINT_BOUND, problem_of

Client = httpx.AsyncClient


@pytest.mark.parametrize(
    "path",
    ["/imports/207431153568281133056", "/imports/77974765865204580352/errors.csv"],
)
async def test_an_id_beyond_bigint_is_a_404(
    client: Client, auth_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=auth_headers)

    assert problem_of(response, 404) == {
        "status": 404,
        "title": "Not Found",
        "detail": f"nothing at {path} (import_id: {BIGINT_BOUND})",
        "extra": [{"message": BIGINT_BOUND, "key": "import_id", "source": "path"}],
    }


@pytest.mark.parametrize("import_id", ["0", "-1", "9223372036854775807"])
async def test_an_id_at_or_past_the_ends_of_the_range_is_a_404(
    client: Client, auth_headers: dict[str, str], import_id: str
) -> None:
    response = await client.get(f"/imports/{import_id}", headers=auth_headers)
    assert response.status_code == 404, response.text


async def test_a_page_offset_beyond_bigint_is_a_422(
    client: Client, auth_headers: dict[str, str]
) -> None:
    response = await client.get("/imports", params={"offset": 2**63}, headers=auth_headers)
    assert response.status_code == 422, response.text
    assert response.json()["extra"] == [
        {"message": BIGINT_BOUND, "key": "offset", "source": "query"}
    ]


async def test_a_time_past_year_9999_in_utc_is_a_row_error_and_the_catalog_stays_readable(
    client: Client, auth_headers: dict[str, str]
) -> None:
    """A valid ISO 8601 time whose offset puts it in year 10000 in UTC: PostgreSQL would store
    it, and no read could return it."""
    content = (
        b"barcode,name,price,quantity,last_updated\r\n"
        b"1,Late,1,1,9999-12-31T23:59:59-14:00\r\n"
        b"2,Fine,1,1,9999-12-31T23:59:59+14:00\r\n"
    )

    response = await client.put(
        "/products", files={"file": ("late.csv", content)}, headers=auth_headers
    )

    body = problem_of(response, 422)
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(2, "last_updated")]
    assert "9999-12-31T23:59:59.999999Z in UTC" in body["errors"][0]["message"]
    listed = await client.get("/products", headers=auth_headers)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []
