"""Who may register, with which role: the first account is an admin (decided in the database),
REGISTRATION=closed lets only admins create accounts, anonymous sign-ups are rate limited."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings
from ekimo.users.roles import Role
from ekimo.users.service import UserService
from tests.conftest import PASSWORD, register_and_login, serve


async def _roles(container: Container) -> dict[str, str]:
    async with container.engine.connect() as conn:
        rows = await conn.execute(text("SELECT username, role FROM users"))
        return {name: role for name, role in rows}


async def test_the_first_account_is_an_admin_and_the_next_ones_editors(
    client: httpx.AsyncClient, container: Container
) -> None:
    first = await client.post("/users", json={"username": "first", "password": PASSWORD})
    second = await client.post("/users", json={"username": "second", "password": PASSWORD})
    assert first.json()["user"]["role"] == "admin"
    assert second.json()["user"]["role"] == "editor"
    assert await _roles(container) == {"first": "admin", "second": "editor"}


async def test_simultaneous_first_sign_ups_give_exactly_one_admin(
    client: httpx.AsyncClient, container: Container
) -> None:
    names = [f"racer{i}" for i in range(6)]
    responses = await asyncio.gather(
        *(client.post("/users", json={"username": n, "password": PASSWORD}) for n in names)
    )
    assert [r.status_code for r in responses] == [201] * len(names)
    roles = await _roles(container)
    assert sorted(roles.values()) == ["admin"] + ["editor"] * (len(names) - 1)


async def test_only_an_admin_chooses_a_role(client: httpx.AsyncClient) -> None:
    admin = await register_and_login(client, "root")
    editor = await register_and_login(client, "eddie")
    refused = await client.post(
        "/users",
        json={"username": "sneaky", "password": PASSWORD, "role": "admin"},
        headers=editor,
    )
    assert refused.status_code == 403
    assert "admin role" in refused.json()["detail"]
    anonymous = await client.post(
        "/users", json={"username": "sneaky", "password": PASSWORD, "role": "admin"}
    )
    assert anonymous.status_code == 403
    made = await client.post(
        "/users", json={"username": "vera", "password": PASSWORD, "role": "viewer"}, headers=admin
    )
    assert made.status_code == 201
    assert made.json()["user"]["role"] == "viewer"


async def test_a_closed_registration_lets_only_admins_create_accounts(
    settings: Settings, container: Container
) -> None:
    async with container.engine.begin() as conn:
        await conn.execute(text("TRUNCATE users RESTART IDENTITY CASCADE"))
    app = create_app(Container(settings.with_values(registration="closed")))
    async with serve(app) as client:
        # Even the first account: a closed deployment creates its admin with the CLI.
        closed = await client.post("/users", json={"username": "anyone", "password": PASSWORD})
        assert closed.status_code == 403
        assert "REGISTRATION=closed" in closed.json()["detail"]
        assert await _roles(container) == {}

        # The operator's way: the CLI's service call, on the server.
        first = await _create_admin(container)
        token = await client.post("/auth", data={"username": first, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        made = await client.post(
            "/users", json={"username": "clerk", "password": PASSWORD}, headers=headers
        )
        assert made.status_code == 201
        assert made.json()["user"]["role"] == "editor"
        editor = await client.post("/auth", data={"username": "clerk", "password": PASSWORD})
        as_editor = await client.post(
            "/users",
            json={"username": "other", "password": PASSWORD},
            headers={"Authorization": f"Bearer {editor.json()['access_token']}"},
        )
        assert as_editor.status_code == 403
    assert await _roles(container) == {first: "admin", "clerk": "editor"}


async def _create_admin(container: Container) -> str:
    async with container.session() as session:
        user = await UserService(session).register("boss", PASSWORD, Role.ADMIN)
    return user.username


async def test_anonymous_sign_ups_are_rate_limited_per_address(
    client: httpx.AsyncClient,
) -> None:
    statuses = [
        (await client.post("/users", json={"username": f"bot{i}", "password": "x"})).status_code
        for i in range(11)
    ]
    assert statuses[:10] == [422] * 10  # each one counted, even the invalid ones
    assert statuses[10] == 429
    limited = await client.post("/users", json={"username": "bot99", "password": PASSWORD})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "sign-ups" in limited.json()["detail"]
