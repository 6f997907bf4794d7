"""What PostgreSQL cannot take never reaches it from the accounts' routes: ids beyond bigint
name nothing (404); text with NUL and instants out of range are 422s naming the field
(issue 15)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import register_and_login
from tests.problems import problem_of

Client = httpx.AsyncClient

BIGINT_BOUND = "Expected `int` <= 9223372036854775807"
BEYOND = "9223372036854775808"
INSTANT_RULE = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in UTC"


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("GET", f"/users/{BEYOND}", "user_id"),
        ("PATCH", f"/users/{BEYOND}", "user_id"),
        ("DELETE", f"/users/{BEYOND}", "user_id"),
        ("DELETE", f"/api-keys/{BEYOND}", "key_id"),
    ],
)
async def test_an_id_beyond_bigint_is_a_404(
    client: Client, auth_headers: dict[str, str], method: str, path: str, key: str
) -> None:
    body = {"active": True} if method == "PATCH" else None

    response = await client.request(method, path, json=body, headers=auth_headers)

    assert problem_of(response, 404) == {
        "status": 404,
        "title": "Not Found",
        "detail": f"nothing at {path} ({key}: {BIGINT_BOUND})",
        "extra": [{"message": BIGINT_BOUND, "key": key, "source": "path"}],
    }


@pytest.mark.parametrize("path", ["/users", "/api-keys", "/audit"])
async def test_an_offset_beyond_bigint_is_a_422(
    client: Client, auth_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, params={"offset": BEYOND}, headers=auth_headers)

    assert response.status_code == 422, response.text
    assert response.json()["title"] == "Unprocessable Content"
    assert response.json()["extra"] == [
        {"message": BIGINT_BOUND, "key": "offset", "source": "query"}
    ]


@pytest.mark.parametrize("field", ["actor", "action"])
async def test_a_nul_in_an_audit_filter_is_a_422(
    client: Client, auth_headers: dict[str, str], field: str
) -> None:
    response = await client.get("/audit", params={field: "a\x00b"}, headers=auth_headers)

    assert response.status_code == 422, response.text
    assert response.json()["extra"][0]["key"] == field


async def test_an_audit_instant_out_of_range_in_utc_is_a_422(
    client: Client, auth_headers: dict[str, str]
) -> None:
    since = "0001-01-01T00:00:00+01:00"

    response = await client.get("/audit", params={"since": since}, headers=auth_headers)

    assert problem_of(response, 422) == {
        "status": 422,
        "title": "Unprocessable Content",
        "detail": f"since: {since} {INSTANT_RULE}",
        "field": "since",
    }


async def test_a_key_name_with_nul_or_an_expiry_out_of_range_is_a_422(
    client: Client, auth_headers: dict[str, str]
) -> None:
    named = await client.post(
        "/api-keys", json={"name": "a\x00b", "role": "viewer"}, headers=auth_headers
    )
    expiring = await client.post(
        "/api-keys",
        json={"name": "k", "role": "viewer", "expires_at": "9999-12-31T23:59:59-14:00"},
        headers=auth_headers,
    )

    assert named.status_code == 422, named.text
    assert named.json()["field"] == "name"
    assert problem_of(expiring, 422) == {
        "status": 422,
        "title": "Unprocessable Content",
        "detail": f"expires_at: 9999-12-31T23:59:59-14:00 {INSTANT_RULE}",
        "field": "expires_at",
    }


async def test_a_login_name_with_nul_is_a_422_in_either_form(client: Client) -> None:
    await register_and_login(client)
    credentials = {"username": "alice\x00", "password": "wrong password"}

    as_form = await client.post("/auth", data=credentials)
    as_json = await client.post("/auth", json=credentials)

    assert problem_of(as_form, 422) == {
        "status": 422,
        "title": "Unprocessable Content",
        "detail": "username must not contain the NUL character (PostgreSQL cannot store it)",
        "field": "username",
    }
    assert as_json.status_code == 422, as_json.text
    assert as_json.json()["field"] == "username"
