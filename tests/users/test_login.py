"""POST /auth: form and JSON login, identical refusals, the rate limit."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings
from tests.conftest import PASSWORD, TEST_SECRET, serve
from tests.problems import problem_of

PROBLEM = "application/problem+json"


async def _register(client: httpx.AsyncClient, username: str = "alice") -> int:
    response = await client.post("/users", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response.json()["user"]["id"]


def _check_token_body(body: dict[str, Any], user_id: int) -> None:
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "HS256"
    claims = jwt.decode(body["access_token"], TEST_SECRET, algorithms=["HS256"])
    # `ver`: the account's token version, so a change of the account ends its tokens.
    assert set(claims) == {"sub", "ver", "iat", "exp", "jti"}
    assert claims["sub"] == str(user_id)
    assert claims["exp"] - claims["iat"] == 30 * 60
    assert abs(claims["iat"] - datetime.now(UTC).timestamp()) < 60


async def test_login_with_the_oauth2_form(client: httpx.AsyncClient) -> None:
    user_id = await _register(client)

    response = await client.post(
        "/auth", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
    )

    assert response.status_code == 200, response.text
    _check_token_body(response.json(), user_id)


async def test_login_with_json(client: httpx.AsyncClient) -> None:
    user_id = await _register(client)

    response = await client.post("/auth", json={"username": "alice", "password": PASSWORD})

    assert response.status_code == 200, response.text
    _check_token_body(response.json(), user_id)


async def test_login_ignores_the_case_of_the_username(client: httpx.AsyncClient) -> None:
    await _register(client, "Alice")
    response = await client.post("/auth", data={"username": "ALICE", "password": PASSWORD})
    assert response.status_code == 200, response.text


async def test_tokens_are_distinct(client: httpx.AsyncClient) -> None:
    await _register(client)
    tokens = set()
    for _ in range(2):
        response = await client.post("/auth", data={"username": "alice", "password": PASSWORD})
        tokens.add(jwt.decode(response.json()["access_token"], TEST_SECRET, ["HS256"])["jti"])
    assert len(tokens) == 2


async def test_wrong_password_and_unknown_user_get_the_same_401(
    client: httpx.AsyncClient,
) -> None:
    await _register(client)

    started = time.perf_counter()
    wrong = await client.post("/auth", data={"username": "alice", "password": "wrong password"})
    wrong_s = time.perf_counter() - started
    started = time.perf_counter()
    unknown = await client.post("/auth", data={"username": "nobody", "password": PASSWORD})
    unknown_s = time.perf_counter() - started

    # The same document but for each request's own id: nothing tells the two cases apart.
    assert problem_of(wrong, 401) == problem_of(unknown, 401)
    assert len(wrong.content) == len(unknown.content)
    # Both run one bcrypt check of the same cost (~0.25 s); without the dummy check the
    # unknown user would answer in milliseconds.
    assert unknown_s > wrong_s / 3, (wrong_s, unknown_s)


async def test_login_without_a_field_is_422_naming_it(client: httpx.AsyncClient) -> None:
    form = await client.post("/auth", data={"username": "alice"})
    assert form.status_code == 422, form.text
    assert form.json()["field"] == "password"

    body = await client.post("/auth", json={"password": PASSWORD})
    assert body.status_code == 422, body.text
    assert body.json()["field"] == "username"


async def test_login_with_another_media_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth", content=b"alice", headers={"content-type": "text/plain"})
    assert response.status_code == 415, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_eleventh_attempt_in_a_minute_is_429_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    for attempt in range(10):
        response = await client.post("/auth", data={"username": "nobody", "password": "x" * 8})
        assert response.status_code == 401, (attempt, response.text)

    limited = await client.post("/auth", data={"username": "nobody", "password": "x" * 8})

    assert limited.status_code == 429, limited.text
    assert limited.headers["content-type"].startswith(PROBLEM)
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert "10 login attempts per minute" in limited.json()["detail"]
    # Registration and other routes are not limited.
    assert (await client.get("/health")).status_code == 200
    await _register(client)


async def test_with_redis_the_limit_holds_across_app_instances(settings: Settings) -> None:
    """Two apps (two processes in production) count one client's attempts together."""
    if settings.redis_url is None:
        pytest.skip("REDIS_URL is unset: each process counts in memory")
    async with (
        serve(create_app(Container(settings))) as first,
        serve(create_app(Container(settings))) as second,
    ):
        for attempt in range(10):
            response = await (first if attempt % 2 else second).post(
                "/auth", data={"username": "nobody", "password": "x" * 8}
            )
            assert response.status_code == 401, (attempt, response.text)
        for app_client in (first, second):
            limited = await app_client.post(
                "/auth", data={"username": "nobody", "password": "x" * 8}
            )
            assert limited.status_code == 429, limited.text
