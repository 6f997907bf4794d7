"""API keys over HTTP: create, list, revoke; a key as the bearer; its role, expiry, revocation,
its owner's changes; wrong keys counted with wrong passwords."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.users import principals as principals_module
from ekimo.users.auth import LOGIN_ATTEMPTS_PER_MINUTE
from ekimo.users.principals import CACHE_SECONDS
from tests.conftest import PASSWORD, register_and_login, serve

PROBLEM = "application/problem+json"
KEY_FIELDS = {"id", "name", "role", "prefix", "created_at", "expires_at", "last_used_at"}
# The promise: a revoked key, or one whose owner changed, stops working within 5 s.
REVOCATION_SECONDS = 5.0


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def create_key(
    client: httpx.AsyncClient, headers: dict[str, str], role: str = "viewer", **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api-keys",
        json={"name": fields.pop("name", f"{role} key"), "role": role, **fields},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def refused_after(
    client: httpx.AsyncClient, headers: dict[str, str], working: int = 200
) -> float:
    """Seconds until GET /products answers 401 with `headers`; fails past the 5 s promise.
    `working`: its answer while the key still works (403 for a role that may not read)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        response = await client.get("/products", headers=headers)
        if response.status_code == 401:
            assert response.headers["content-type"].startswith(PROBLEM)
            assert "API key" in response.json()["detail"]
            return loop.time() - started
        assert response.status_code == working, response.text
        assert loop.time() - started < REVOCATION_SECONDS, "the key still works after 5 s"
        await asyncio.sleep(0.05)


async def audit_events(container: Container, action: str) -> list[dict[str, Any]]:
    async with container.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM audit_events WHERE action = :a ORDER BY id"), {"a": action}
        )
        return [dict(r) for r in rows.mappings()]


async def test_create_list_and_revoke(client: httpx.AsyncClient, container: Container) -> None:
    admin = await register_and_login(client)

    created = await create_key(client, admin, "receiver", name="partner shop")

    assert set(created) == {"api_key", "secret"}
    key, secret = created["api_key"], created["secret"]
    assert set(key) == KEY_FIELDS
    assert (key["name"], key["role"]) == ("partner shop", "receiver")
    assert key["expires_at"] is None
    assert key["last_used_at"] is None
    # "ekimo_" and at least 32 random bytes, URL-safe base64 (43 characters).
    assert secret.startswith("ekimo_")
    assert len(secret) >= len("ekimo_") + 43
    assert set(secret[6:]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert key["prefix"] == secret[:12]
    another = await create_key(client, admin, "receiver")
    assert another["secret"] != secret

    async with container.engine.connect() as conn:
        stored = (
            (await conn.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": key["id"]}))
            .mappings()
            .one()
        )
    assert secret not in {str(v) for v in stored.values()}  # only a hash is kept
    assert len(stored["secret_hash"]) == 64

    listed = await client.get("/api-keys", headers=admin)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
    assert [item["id"] for item in page["items"]] == [another["api_key"]["id"], key["id"]]
    assert all(set(item) == KEY_FIELDS for item in page["items"])
    assert secret not in listed.text
    assert another["secret"] not in listed.text

    revoked = await client.delete(f"/api-keys/{key['id']}", headers=admin)
    assert revoked.status_code == 204, revoked.text
    remaining = (await client.get("/api-keys", headers=admin)).json()
    assert [item["id"] for item in remaining["items"]] == [another["api_key"]["id"]]
    again = await client.delete(f"/api-keys/{key['id']}", headers=admin)
    assert again.status_code == 404
    assert again.headers["content-type"].startswith(PROBLEM)

    made = await audit_events(container, "api_key.created")
    assert [e["target"] for e in made] == [
        f"api_key:{key['id']}",
        f"api_key:{another['api_key']['id']}",
    ]
    assert made[0]["actor_name"] == "alice"
    assert made[0]["details"]["role"] == "receiver"
    gone = await audit_events(container, "api_key.revoked")
    assert [(e["target"], e["actor_name"]) for e in gone] == [(f"api_key:{key['id']}", "alice")]
    assert all(secret not in str(e["details"]) for e in made + gone)


async def test_paging(client: httpx.AsyncClient) -> None:
    admin = await register_and_login(client)
    ids = [(await create_key(client, admin, name=f"k{n}"))["api_key"]["id"] for n in range(3)]

    page = (await client.get("/api-keys", params={"limit": 2, "offset": 1}, headers=admin)).json()

    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    assert [item["id"] for item in page["items"]] == [ids[1], ids[0]]
    too_big = await client.get("/api-keys", params={"limit": 100_000}, headers=admin)
    assert too_big.status_code == 422


async def test_a_key_works_as_the_bearer_within_its_role(client: httpx.AsyncClient) -> None:
    admin = await register_and_login(client)
    viewer = bearer((await create_key(client, admin, "viewer"))["secret"])

    assert (await client.get("/products", headers=viewer)).status_code == 200
    assert (await client.get("/sync/status", headers=viewer)).status_code == 200
    refused = await client.post("/sync", headers=viewer)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith(PROBLEM)
    detail = refused.json()["detail"]
    assert "editor role" in detail
    assert "this API key has the viewer role" in detail

    receiver = bearer((await create_key(client, admin, "receiver"))["secret"])
    product = {
        "barcode": "0000000000017",
        "name": "Sent with a key",
        "price": "1.50",
        "quantity": "2",
        "last_updated": "2025-01-02T03:04:05Z",
    }
    sent = await client.post("/products", json={"products": [product]}, headers=receiver)
    assert sent.status_code == 201, sent.text
    assert (await client.get("/products", headers=receiver)).status_code == 403
    assert (await client.get("/products/0000000000017", headers=admin)).status_code == 200


async def test_last_used_at_is_recorded(client: httpx.AsyncClient) -> None:
    admin = await register_and_login(client)
    created = await create_key(client, admin)
    assert (await client.get("/products", headers=bearer(created["secret"]))).status_code == 200

    loop = asyncio.get_running_loop()
    deadline = loop.time() + REVOCATION_SECONDS
    while True:  # written off the request's path: poll for it
        item = (await client.get("/api-keys", headers=admin)).json()["items"][0]
        if item["last_used_at"] is not None:
            break
        assert loop.time() < deadline, "last_used_at was never written"
        await asyncio.sleep(0.05)
    used = datetime.fromisoformat(item["last_used_at"])
    assert abs(used - datetime.now(UTC)) < timedelta(minutes=1)


async def test_keys_cannot_manage_keys(client: httpx.AsyncClient) -> None:
    admin = await register_and_login(client)
    created = await create_key(client, admin, "admin")
    key = bearer(created["secret"])

    attempts = [
        await client.post("/api-keys", json={"name": "minted", "role": "viewer"}, headers=key),
        await client.get("/api-keys", headers=key),
        await client.delete(f"/api-keys/{created['api_key']['id']}", headers=key),
    ]

    for response in attempts:
        assert response.status_code == 403, response.text
        assert "an API key cannot create, list or revoke keys" in response.json()["detail"]
    # The admin key still works where its role allows, and nothing was minted or revoked.
    assert (await client.get("/audit", headers=key)).status_code == 200
    assert (await client.get("/api-keys", headers=admin)).json()["total"] == 1


async def test_a_key_may_not_outrank_its_creator(client: httpx.AsyncClient) -> None:
    await register_and_login(client)  # the first account: the admin
    editor = await register_and_login(client, "bob")

    refused = await client.post(
        "/api-keys", json={"name": "escalate", "role": "admin"}, headers=editor
    )

    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith(PROBLEM)
    body = refused.json()
    assert "editor role cannot create a key with the admin role" in body["detail"]
    assert body["field"] == "role"
    for role in ("editor", "viewer", "receiver"):
        assert (await create_key(client, editor, role))["api_key"]["role"] == role
    assert (await client.get("/api-keys", headers=editor)).json()["total"] == 3


async def test_viewers_manage_their_own_keys_and_receivers_none(
    client: httpx.AsyncClient,
) -> None:
    admin = await register_and_login(client)
    for username, role in (("vera", "viewer"), ("rex", "receiver")):
        made = await client.post(
            "/users",
            json={"username": username, "password": PASSWORD, "role": role},
            headers=admin,
        )
        assert made.status_code == 201, made.text
    viewer = (await client.post("/auth", data={"username": "vera", "password": PASSWORD})).json()
    receiver = (await client.post("/auth", data={"username": "rex", "password": PASSWORD})).json()
    viewer_headers = bearer(viewer["access_token"])

    assert (await create_key(client, viewer_headers, "viewer"))["api_key"]["role"] == "viewer"
    too_much = await client.post(
        "/api-keys", json={"name": "x", "role": "receiver"}, headers=viewer_headers
    )
    assert too_much.status_code == 403, too_much.text
    refused = await client.get("/api-keys", headers=bearer(receiver["access_token"]))
    assert refused.status_code == 403, refused.text
    assert "viewer role" in refused.json()["detail"]


async def test_only_admins_see_and_revoke_others_keys(client: httpx.AsyncClient) -> None:
    admin = await register_and_login(client)
    editor = await register_and_login(client, "bob")
    admins_key = (await create_key(client, admin, name="admin's"))["api_key"]
    bobs_key = (await create_key(client, editor, name="bob's"))["api_key"]

    own = (await client.get("/api-keys", headers=editor)).json()
    assert [item["id"] for item in own["items"]] == [bobs_key["id"]]
    assert own["total"] == 1
    every = (await client.get("/api-keys", headers=admin)).json()
    assert {item["id"] for item in every["items"]} == {admins_key["id"], bobs_key["id"]}

    not_his = await client.delete(f"/api-keys/{admins_key['id']}", headers=editor)
    assert not_his.status_code == 404, not_his.text
    assert (await client.get("/api-keys", headers=admin)).json()["total"] == 2
    assert (await client.delete(f"/api-keys/{bobs_key['id']}", headers=admin)).status_code == 204
    assert (await client.get("/api-keys", headers=editor)).json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "old", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "   ", "role": "viewer"}, "name"),
        ({"name": "x", "role": "owner"}, "role"),
        ({"role": "viewer"}, "name"),
        ({"name": "x" * 101, "role": "viewer"}, "name"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    admin = await register_and_login(client)

    response = await client.post("/api-keys", json=body, headers=admin)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["field"] == field
    assert (await client.get("/api-keys", headers=admin)).json()["total"] == 0


async def test_a_future_expiry_is_kept(client: httpx.AsyncClient) -> None:
    admin = await register_and_login(client)
    when = datetime.now(UTC) + timedelta(days=30)

    key = (await create_key(client, admin, expires_at=when.isoformat()))["api_key"]

    assert datetime.fromisoformat(key["expires_at"]) == when


async def test_a_revoked_key_is_refused_at_once(client: httpx.AsyncClient) -> None:
    admin = await register_and_login(client)
    created = await create_key(client, admin)
    key = bearer(created["secret"])
    assert (await client.get("/products", headers=key)).status_code == 200  # now cached

    assert (
        await client.delete(f"/api-keys/{created['api_key']['id']}", headers=admin)
    ).status_code == 204

    refused = await client.get("/products", headers=key)
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["detail"] == "the API key is invalid, expired or revoked"


async def test_a_key_revoked_through_another_process_is_refused_within_5_s(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await register_and_login(client)
    created = await create_key(client, admin)
    key = bearer(created["secret"])
    assert (await client.get("/products", headers=key)).status_code == 200  # now cached

    # Another app (another process in production) revokes it: this one's cache is not told.
    async with serve(create_app(container)) as other:
        revoked = await other.delete(f"/api-keys/{created['api_key']['id']}", headers=admin)
        assert revoked.status_code == 204, revoked.text

    assert await refused_after(client, key) < REVOCATION_SECONDS


async def test_an_expired_key_is_refused(client: httpx.AsyncClient, container: Container) -> None:
    admin = await register_and_login(client)
    created = await create_key(
        client, admin, expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
    )
    key = bearer(created["secret"])
    assert (await client.get("/products", headers=key)).status_code == 200

    # Time passes: the hour is over.
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": created["api_key"]["id"]},
        )

    assert await refused_after(client, key) <= CACHE_SECONDS + 1


@pytest.mark.parametrize(
    "change",
    [
        "token_version = token_version + 1",  # a new role or password
        "active = false",
    ],
)
async def test_a_change_of_the_owner_ends_the_key(
    client: httpx.AsyncClient, container: Container, change: str
) -> None:
    admin = await register_and_login(client)
    key = bearer((await create_key(client, admin))["secret"])
    assert (await client.get("/products", headers=key)).status_code == 200

    async with container.engine.begin() as conn:
        await conn.execute(text(f"UPDATE users SET {change} WHERE username = 'alice'"))

    assert await refused_after(client, key) < REVOCATION_SECONDS


async def test_wrong_keys_count_with_wrong_passwords(client: httpx.AsyncClient) -> None:
    admin = await register_and_login(client)  # one login attempt of this address
    valid = bearer((await create_key(client, admin))["secret"])
    wrong = bearer("ekimo_" + "A" * 43)

    statuses = [
        (await client.get("/products", headers=wrong)).status_code
        for _ in range(LOGIN_ATTEMPTS_PER_MINUTE - 1)
    ]
    limited = await client.get("/products", headers=wrong)

    assert statuses == [401] * (LOGIN_ATTEMPTS_PER_MINUTE - 1)
    assert limited.status_code == 429, limited.text
    assert limited.headers["content-type"].startswith(PROBLEM)
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "login attempts and wrong API keys" in limited.json()["detail"]
    # One count: the right password is now refused too...
    login = await client.post("/auth", data={"username": "alice", "password": PASSWORD})
    assert login.status_code == 429, login.text
    # ...while valid credentials go on working: they never touch the count.
    assert (await client.get("/products", headers=valid)).status_code == 200
    assert (await client.get("/products", headers=admin)).status_code == 200


async def test_wrong_passwords_count_against_wrong_keys(client: httpx.AsyncClient) -> None:
    for _ in range(LOGIN_ATTEMPTS_PER_MINUTE):
        response = await client.post("/auth", data={"username": "nobody", "password": "x" * 8})
        assert response.status_code == 401

    limited = await client.get("/products", headers=bearer("ekimo_" + "B" * 43))

    assert limited.status_code == 429, limited.text
    # A wrong token that is not an API key is a plain 401, not counted.
    assert (await client.get("/products", headers=bearer("not-a-jwt"))).status_code == 401


async def test_wrong_keys_from_everywhere_do_not_grow_the_cache_without_bound(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each wrong key is cached as "no key"; many addresses together could send millions."""
    monkeypatch.setattr(principals_module, "MAX_ENTRIES", 5)
    headers = await register_and_login(client)
    secret = (await create_key(client, headers))["secret"]
    principals = principals_module.Principals(container)

    assert await principals.for_key(secret) is not None
    for n in range(12):
        assert await principals.for_key(f"ekimo_wrong{n:04d}") is None
    cached = principals._keys._entries  # pyright: ignore[reportPrivateUsage]
    assert len(cached) == 5
    assert principals_module.secret_hash("ekimo_wrong0011") in cached  # the newest stay
    assert await principals.for_key(secret) is not None  # dropped, then loaded again
