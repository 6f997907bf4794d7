"""The accounts over HTTP: your own (GET /users/me, POST /users/me/password) and the admins'
GET /users, GET/PATCH/DELETE /users/{id}, with the last-admin rule, revocation of tokens and
keys, the audit trail, and the import history of a deleted account."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from ekimo.container import Container
from ekimo.entry.worker import create_worker
from ekimo.settings import Settings
from ekimo.users.audit import Action
from tests.conftest import PASSWORD, register_and_login

PROBLEM = "application/problem+json"
NEW_PASSWORD = "a brand new passphrase"
USER_KEYS = {"id", "username", "role", "active", "created_at"}
# The promise for revocation; in this process it is at once (the cache is dropped).
REVOCATION_DEADLINE_S = 5.0

Headers = dict[str, str]


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


async def _login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> Headers:
    response = await client.post("/auth", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _create(
    client: httpx.AsyncClient, admin: Headers, username: str, role: str | None = None
) -> int:
    """An account made by an admin (with `role`, or REGISTRATION_ROLE); its id."""
    body: dict[str, Any] = {"username": username, "password": PASSWORD}
    if role is not None:
        body["role"] = role
    response = await client.post("/users", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()["user"]["id"]


async def _me(client: httpx.AsyncClient, headers: Headers) -> dict[str, Any]:
    response = await client.get("/users/me", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["user"]


async def _refused_within(
    client: httpx.AsyncClient, headers: Headers, seconds: float = REVOCATION_DEADLINE_S
) -> httpx.Response:
    """Poll GET /users/me until the credential is refused (401); fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get("/users/me", headers=headers)
        if response.status_code == 401:
            return response
        assert response.status_code == 200, response.text
        assert time.monotonic() < deadline, f"still accepted after {seconds} s"
        await asyncio.sleep(0.05)


async def _events(container: Container, action: str) -> list[dict[str, Any]]:
    async with container.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM audit_events WHERE action = :a ORDER BY id"), {"a": action}
        )
        return [dict(r._mapping) for r in rows]


async def _admins(container: Container) -> list[str]:
    async with container.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT username FROM users WHERE role = 'admin' AND active ORDER BY id")
        )
        return [r.username for r in rows]


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> Headers:
    """The first account of the database, hence an admin."""
    return await register_and_login(client, "root")


# -- your own account -----------------------------------------------------------------------


async def test_me_is_the_callers_account(client: httpx.AsyncClient, admin: Headers) -> None:
    bob = await register_and_login(client, "bob")

    mine = await client.get("/users/me", headers=admin)
    his = await _me(client, bob)

    assert mine.status_code == 200, mine.text
    assert set(mine.json()) == {"user"}
    assert set(mine.json()["user"]) == USER_KEYS
    assert mine.json()["user"]["username"] == "root"
    assert mine.json()["user"]["role"] == "admin"
    assert (his["username"], his["role"], his["active"]) == ("bob", "editor", True)
    assert his["id"] != mine.json()["user"]["id"]


async def test_me_needs_a_token_and_a_role_that_has_an_account(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    _problem(await client.get("/users/me"), 401)
    await _create(client, admin, "pusher", role="receiver")
    receiver = await _login(client, "pusher")

    refused = _problem(await client.get("/users/me", headers=receiver), 403)

    assert "viewer role" in refused["detail"]


async def test_changing_the_password_ends_the_old_token(
    client: httpx.AsyncClient, admin: Headers, container: Container
) -> None:
    bob = await register_and_login(client, "bob")
    bob_id = (await _me(client, bob))["id"]

    response = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bob,
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    refused = await _refused_within(client, bob)
    assert refused.headers["www-authenticate"].startswith("Bearer")
    old = await client.post("/auth", data={"username": "bob", "password": PASSWORD})
    _problem(old, 401)
    assert (await _me(client, await _login(client, "bob", NEW_PASSWORD)))["id"] == bob_id
    [event] = await _events(container, Action.PASSWORD_CHANGED)
    assert (event["actor_id"], event["actor_name"]) == (bob_id, "bob")
    assert event["target"] == f"user:{bob_id}"


async def test_a_wrong_current_password_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, admin: Headers, container: Container
) -> None:
    response = await client.post(
        "/users/me/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=admin,
    )

    problem = _problem(response, 422)
    assert problem["field"] == "current_password"
    assert "current_password" in problem["detail"]
    assert (await _me(client, admin))["username"] == "root"
    await _login(client, "root", PASSWORD)
    assert await _events(container, Action.PASSWORD_CHANGED) == []


@pytest.mark.parametrize(
    ("new_password", "says"),
    [("short", "8 to 72 bytes"), ("é" * 37, "74 bytes")],
)
async def test_the_new_password_follows_the_registration_rule(
    client: httpx.AsyncClient, admin: Headers, new_password: str, says: str
) -> None:
    response = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=admin,
    )

    problem = _problem(response, 422)
    assert problem["field"] == "new_password"
    assert says in problem["detail"]
    await _login(client, "root", PASSWORD)


async def test_a_password_change_without_both_fields_is_a_400(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    response = await client.post(
        "/users/me/password", json={"new_password": NEW_PASSWORD}, headers=admin
    )
    assert "current_password" in _problem(response, 400)["detail"]


# -- the admins' view -----------------------------------------------------------------------


async def test_an_admin_pages_through_the_accounts(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    for name in ("bob", "carol", "dave"):
        await _create(client, admin, name)

    response = await client.get("/users", params={"limit": 2, "offset": 1}, headers=admin)
    beyond = await client.get("/users", params={"offset": 10}, headers=admin)

    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "total", "limit", "offset"}
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert [u["username"] for u in page["items"]] == ["bob", "carol"]
    assert all(set(u) == USER_KEYS for u in page["items"])
    assert beyond.json()["items"] == []
    assert beyond.json()["total"] == 4
    _problem(await client.get("/users", params={"limit": 0}, headers=admin), 422)


async def test_an_admin_reads_one_account_and_a_missing_one_is_404(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    bob_id = await _create(client, admin, "bob", role="viewer")

    response = await client.get(f"/users/{bob_id}", headers=admin)
    missing = await client.get(f"/users/{bob_id + 100}", headers=admin)

    assert response.status_code == 200, response.text
    assert response.json()["user"]["username"] == "bob"
    assert response.json()["user"]["role"] == "viewer"
    assert str(bob_id + 100) in _problem(missing, 404)["detail"]


@pytest.mark.parametrize("role", ["viewer", "editor", "receiver"])
async def test_only_admins_manage_accounts(
    client: httpx.AsyncClient, admin: Headers, role: str
) -> None:
    other_id = await _create(client, admin, "other")
    await _create(client, admin, "someone", role=role)
    caller = await _login(client, "someone")

    answers = [
        await client.get("/users", headers=caller),
        await client.get(f"/users/{other_id}", headers=caller),
        await client.patch(f"/users/{other_id}", json={"role": "admin"}, headers=caller),
        await client.delete(f"/users/{other_id}", headers=caller),
    ]

    for answer in answers:
        problem = _problem(answer, 403)
        assert "managing accounts needs the admin role" in problem["detail"]
        assert role in problem["detail"]
    # Nothing happened to the account they aimed at.
    assert (await client.get(f"/users/{other_id}", headers=admin)).json()["user"]["role"] == (
        "editor"
    )


async def test_without_a_token_the_admin_routes_are_401(client: httpx.AsyncClient) -> None:
    for answer in [
        await client.get("/users"),
        await client.get("/users/1"),
        await client.patch("/users/1", json={"active": False}),
        await client.delete("/users/1"),
    ]:
        _problem(answer, 401)


async def test_changing_a_role_ends_the_accounts_tokens_and_is_recorded(
    client: httpx.AsyncClient, admin: Headers, container: Container
) -> None:
    root_id = (await _me(client, admin))["id"]
    bob = await register_and_login(client, "bob")
    bob_id = (await _me(client, bob))["id"]

    response = await client.patch(f"/users/{bob_id}", json={"role": "viewer"}, headers=admin)

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"user"}
    assert response.json()["user"]["role"] == "viewer"
    assert response.json()["user"]["active"] is True
    await _refused_within(client, bob)
    assert (await _me(client, await _login(client, "bob")))["role"] == "viewer"
    [event] = await _events(container, Action.ROLE_CHANGED)
    assert (event["actor_id"], event["actor_name"]) == (root_id, "root")
    assert event["target"] == f"user:{bob_id}"
    assert event["details"]["from"] == "editor"
    assert event["details"]["to"] == "viewer"


async def test_a_patch_that_changes_nothing_keeps_the_tokens(
    client: httpx.AsyncClient, admin: Headers, container: Container
) -> None:
    bob = await register_and_login(client, "bob")
    bob_id = (await _me(client, bob))["id"]

    same = await client.patch(
        f"/users/{bob_id}", json={"role": "editor", "active": True}, headers=admin
    )
    empty = await client.patch(f"/users/{bob_id}", json={}, headers=admin)

    assert same.status_code == 200, same.text
    assert empty.status_code == 200, empty.text
    assert (await _me(client, bob))["username"] == "bob"
    assert await _events(container, Action.ROLE_CHANGED) == []


@pytest.mark.parametrize(
    "body", [{"role": "superuser"}, {"active": "maybe"}, {"rol": "admin"}, ["role"]]
)
async def test_a_malformed_patch_is_a_400(
    client: httpx.AsyncClient, admin: Headers, body: Any
) -> None:
    bob_id = await _create(client, admin, "bob")

    _problem(await client.patch(f"/users/{bob_id}", json=body, headers=admin), 400)

    assert (await client.get(f"/users/{bob_id}", headers=admin)).json()["user"]["role"] == (
        "editor"
    )


async def test_a_deactivated_account_is_refused_until_it_is_active_again(
    client: httpx.AsyncClient, admin: Headers, container: Container
) -> None:
    bob = await register_and_login(client, "bob")
    bob_id = (await _me(client, bob))["id"]

    response = await client.patch(f"/users/{bob_id}", json={"active": False}, headers=admin)

    assert response.status_code == 200, response.text
    assert response.json()["user"]["active"] is False
    refused = await _refused_within(client, bob)
    assert refused.headers["content-type"].startswith(PROBLEM)
    _problem(await client.post("/auth", data={"username": "bob", "password": PASSWORD}), 401)
    [event] = await _events(container, Action.ACTIVE_CHANGED)
    assert (event["target"], event["details"]["from"], event["details"]["to"]) == (
        f"user:{bob_id}",
        True,
        False,
    )

    again = await client.patch(f"/users/{bob_id}", json={"active": True}, headers=admin)

    assert again.json()["user"]["active"] is True
    assert (await _me(client, await _login(client, "bob")))["id"] == bob_id


async def test_a_deleted_account_and_its_keys_are_gone(
    client: httpx.AsyncClient, admin: Headers, container: Container
) -> None:
    bob = await register_and_login(client, "bob")
    bob_id = (await _me(client, bob))["id"]
    created = await client.post("/api-keys", json={"name": "shop", "role": "editor"}, headers=bob)
    assert created.status_code == 201, created.text
    key = {"Authorization": f"Bearer {created.json()['secret']}"}
    assert (await client.get("/users/me", headers=key)).status_code == 200

    response = await client.delete(f"/users/{bob_id}", headers=admin)

    assert response.status_code == 204, response.text
    _problem(await client.get(f"/users/{bob_id}", headers=admin), 404)
    _problem(await client.delete(f"/users/{bob_id}", headers=admin), 404)
    await _refused_within(client, bob)
    await _refused_within(client, key)
    async with container.engine.connect() as conn:
        keys = await conn.scalar(
            text("SELECT count(*) FROM api_keys WHERE user_id = :id"), {"id": bob_id}
        )
    assert keys == 0
    [event] = await _events(container, Action.USER_DELETED)
    assert event["target"] == f"user:{bob_id}"
    assert event["actor_name"] == "root"
    assert event["details"]["username"] == "bob"


# -- the last active admin ------------------------------------------------------------------


async def test_the_last_active_admin_stays_one(
    client: httpx.AsyncClient, admin: Headers, container: Container
) -> None:
    root_id = (await _me(client, admin))["id"]
    # Another admin that is not active does not count.
    other_id = await _create(client, admin, "dormant", role="admin")
    deactivated = await client.patch(f"/users/{other_id}", json={"active": False}, headers=admin)
    assert deactivated.status_code == 200, deactivated.text

    answers = [
        await client.patch(f"/users/{root_id}", json={"role": "editor"}, headers=admin),
        await client.patch(f"/users/{root_id}", json={"active": False}, headers=admin),
        await client.patch(
            f"/users/{root_id}", json={"role": "viewer", "active": False}, headers=admin
        ),
        await client.delete(f"/users/{root_id}", headers=admin),
    ]

    for answer in answers:
        assert "last active admin" in _problem(answer, 409)["detail"]
    assert await _admins(container) == ["root"]
    assert (await _me(client, admin))["role"] == "admin"


async def test_with_a_second_admin_the_first_may_step_down(
    client: httpx.AsyncClient, admin: Headers, container: Container
) -> None:
    root_id = (await _me(client, admin))["id"]
    await _create(client, admin, "deputy", role="admin")

    response = await client.patch(f"/users/{root_id}", json={"role": "editor"}, headers=admin)

    assert response.status_code == 200, response.text
    assert await _admins(container) == ["deputy"]
    # Their own token went with the role.
    await _refused_within(client, admin)


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, admin: Headers, container: Container
) -> None:
    root_id = (await _me(client, admin))["id"]
    deputy_id = await _create(client, admin, "deputy", role="admin")
    deputy = await _login(client, "deputy")
    # Both principals cached: the two requests get past authentication together.
    await _me(client, deputy)

    answers = await asyncio.gather(
        client.patch(f"/users/{deputy_id}", json={"role": "editor"}, headers=admin),
        client.patch(f"/users/{root_id}", json={"role": "editor"}, headers=deputy),
    )

    assert len(await _admins(container)) == 1
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]


async def test_two_deletions_at_once_leave_one_admin(
    client: httpx.AsyncClient, admin: Headers, container: Container
) -> None:
    root_id = (await _me(client, admin))["id"]
    deputy_id = await _create(client, admin, "deputy", role="admin")
    deputy = await _login(client, "deputy")
    await _me(client, deputy)

    answers = await asyncio.gather(
        client.delete(f"/users/{deputy_id}", headers=admin),
        client.delete(f"/users/{root_id}", headers=deputy),
    )

    assert len(await _admins(container)) == 1
    assert sorted(a.status_code for a in answers) == [204, 409], [a.text for a in answers]


# -- the import history of a deleted account ------------------------------------------------


@contextlib.asynccontextmanager
async def _worker(settings: Settings) -> AsyncIterator[None]:
    """A real SAQ worker on the app's queue, with a container of its own (as `ekimo worker`)."""
    async with Container(settings) as own:
        saq_worker = create_worker(own, handle_signals=False, schedule=False)
        task = asyncio.create_task(saq_worker.start())
        try:
            yield
        finally:
            await saq_worker.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _finished(client: httpx.AsyncClient, headers: Headers, import_id: int) -> Any:
    deadline = time.monotonic() + 60
    while True:
        body = (await client.get(f"/imports/{import_id}", headers=headers)).json()
        if body["status"] not in ("queued", "running"):
            return body
        assert time.monotonic() < deadline, f"import still {body['status']}"
        await asyncio.sleep(0.05)


async def test_a_deleted_accounts_imports_keep_its_id_and_name(
    client: httpx.AsyncClient, admin: Headers, container: Container, settings: Settings
) -> None:
    bob = await register_and_login(client, "bob")
    bob_id = (await _me(client, bob))["id"]
    content = b"barcode,name,price,quantity\r\n4006381333931,Pen,1.50,3\r\n"
    applied = await client.put("/products", files={"file": ("a.csv", content)}, headers=bob)
    assert applied.status_code == 200, applied.text
    queued = await client.put(
        "/products", params={"async": "true"}, files={"file": ("b.csv", content)}, headers=bob
    )
    assert queued.status_code == 202, queued.text
    async with _worker(settings):
        await _finished(client, admin, queued.json()["import_id"])

    deleted = await client.delete(f"/users/{bob_id}", headers=admin)

    assert deleted.status_code == 204, deleted.text
    for import_id in (applied.json()["import_id"], queued.json()["import_id"]):
        report = (await client.get(f"/imports/{import_id}", headers=admin)).json()
        assert (report["user_id"], report["username"]) == (bob_id, "bob"), report
        assert report["status"] == "applied"
    async with container.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT user_id, username FROM imports"))).all()
    assert sorted(tuple(r) for r in rows) == [(bob_id, "bob"), (bob_id, "bob")]


# -- the contract in OpenAPI ----------------------------------------------------------------


async def test_openapi_documents_each_account_operation(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/docs/openapi.json")).json()["paths"]
    operations = {
        ("/users/me", "get"): {"401", "403"},
        ("/users/me/password", "post"): {"401", "403", "422"},
        ("/users", "get"): {"401", "403"},
        ("/users/{user_id}", "get"): {"401", "403", "404"},
        ("/users/{user_id}", "patch"): {"401", "403", "404", "409"},
        ("/users/{user_id}", "delete"): {"401", "403", "404", "409"},
    }
    for (path, method), statuses in operations.items():
        operation = paths[path][method]
        assert operation["tags"] == ["accounts"], (path, method)
        assert statuses <= set(operation["responses"]), (path, method)
        assert "**Roles:**" in operation["description"], (path, method)
    assert paths["/users/{user_id}"]["patch"]["description"].endswith("**Roles:** admin.")
