"""Logging out (DELETE /auth) ends that access token before it expires, in every process
within 5 s; the account's other tokens and keys go on working."""

from __future__ import annotations

import asyncio

import httpx

from ekimo.container import Container
from ekimo.entry.app import create_app
from tests.conftest import PASSWORD, register_and_login, serve

PROBLEM = "application/problem+json"
REVOCATION_SECONDS = 5.0


async def test_a_logged_out_token_is_refused_and_the_others_live_on(
    client: httpx.AsyncClient,
) -> None:
    first = await register_and_login(client, "lou")
    login = await client.post("/auth", data={"username": "lou", "password": PASSWORD})
    second = {"Authorization": f"Bearer {login.json()['access_token']}"}

    logged_out = await client.delete("/auth", headers=first)

    assert logged_out.status_code == 204, logged_out.text
    refused = await client.get("/users/me", headers=first)
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert "logged out" in refused.json()["detail"]
    assert (await client.get("/users/me", headers=second)).status_code == 200
    assert (await client.delete("/auth", headers=first)).status_code == 401


async def test_an_api_key_is_not_logged_out_but_told_how_to_revoke_it(
    client: httpx.AsyncClient,
) -> None:
    headers = await register_and_login(client, "kay")
    created = await client.post("/api-keys", json={"name": "k", "role": "viewer"}, headers=headers)
    key = {"Authorization": f"Bearer {created.json()['secret']}"}

    answer = await client.delete("/auth", headers=key)

    assert answer.status_code == 400
    assert "DELETE /api-keys/{id}" in answer.json()["detail"]
    assert (await client.get("/products", headers=key)).status_code == 200


async def test_a_token_logged_out_through_another_process_is_refused_within_5_s(
    client: httpx.AsyncClient, container: Container
) -> None:
    headers = await register_and_login(client, "pat")
    assert (await client.get("/products", headers=headers)).status_code == 200  # now cached

    # Another app (another process in production) logs it out: this one's cache is not told.
    async with serve(create_app(container)) as other:
        assert (await other.delete("/auth", headers=headers)).status_code == 204

    loop = asyncio.get_running_loop()
    started = loop.time()
    while (await client.get("/products", headers=headers)).status_code != 401:
        assert loop.time() - started < REVOCATION_SECONDS, "the token still works after 5 s"
        await asyncio.sleep(0.05)
