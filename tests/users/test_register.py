"""POST /users: registration rules, at the HTTP level."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ekimo.container import Container
from ekimo.users.models import User
from tests.conftest import PASSWORD

PROBLEM = "application/problem+json"


async def test_register_returns_the_user_without_password(
    client: httpx.AsyncClient, container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await client.post("/users", json={"username": "alice", "password": PASSWORD})

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"user"}
    assert set(body["user"]) == {"id", "username", "role", "active", "created_at"}
    assert body["user"]["username"] == "alice"
    assert PASSWORD not in response.text
    assert PASSWORD not in caplog.text
    async with container.session() as session:
        user = (await session.execute(select(User))).scalar_one()
    assert user.id == body["user"]["id"]
    assert user.password_hash.startswith("$2b$12$")
    assert PASSWORD not in user.password_hash


@pytest.mark.parametrize(
    "username", ["ab", "a" * 65, "alice smith", "alice/x", "élodie", "", "alice\n"]
)
async def test_invalid_username_is_422_naming_the_field(
    client: httpx.AsyncClient, username: str
) -> None:
    response = await client.post("/users", json={"username": username, "password": PASSWORD})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["field"] == "username"
    assert "3 to 64 characters" in problem["detail"]


@pytest.mark.parametrize("username", ["abc", "a" * 64, "Bob.Smith_1-x@example.org"])
async def test_usernames_within_the_rules_are_accepted(
    client: httpx.AsyncClient, username: str
) -> None:
    response = await client.post("/users", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("password", "size"),
    [
        ("short", 5),
        ("a" * 73, 73),
        ("é" * 37, 74),  # 37 characters, 74 bytes: passes a character count, not bcrypt
        ("€" * 25, 75),
    ],
)
async def test_password_outside_8_to_72_bytes_is_422(
    client: httpx.AsyncClient, container: Container, password: str, size: int
) -> None:
    response = await client.post("/users", json={"username": "alice", "password": password})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["field"] == "password"
    assert "8 to 72 bytes" in problem["detail"]
    assert "bcrypt" in problem["detail"]
    async with container.session() as session:
        assert (await session.execute(select(User))).first() is None


async def test_password_of_exactly_72_bytes_works_for_login(client: httpx.AsyncClient) -> None:
    password = "é" * 36  # 72 bytes
    created = await client.post("/users", json={"username": "alice", "password": password})
    assert created.status_code == 201, created.text
    token = await client.post("/auth", data={"username": "alice", "password": password})
    assert token.status_code == 200, token.text
    # No silent truncation: a 73-byte password that starts with the real one is refused.
    longer = await client.post("/auth", data={"username": "alice", "password": password + "x"})
    assert longer.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "alice"}, "password"),
        ({"username": 5, "password": PASSWORD}, "username"),
    ],
)
async def test_missing_or_mistyped_field_is_422(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/users", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert field in response.json()["detail"]


async def test_duplicate_username_ignoring_case_is_409(client: httpx.AsyncClient) -> None:
    first = await client.post("/users", json={"username": "Alice", "password": PASSWORD})
    assert first.status_code == 201

    again = await client.post("/users", json={"username": "aLICE", "password": "another password"})

    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith(PROBLEM)
    assert "already taken" in again.json()["detail"]


async def test_simultaneous_registrations_of_one_name_give_one_201_and_one_409(
    client: httpx.AsyncClient, container: Container
) -> None:
    responses = await asyncio.gather(
        client.post("/users", json={"username": "race", "password": PASSWORD}),
        client.post("/users", json={"username": "RACE", "password": PASSWORD}),
    )

    assert sorted(r.status_code for r in responses) == [201, 409]
    async with container.session() as session:
        users = (await session.execute(select(User))).scalars().all()
    assert len(users) == 1
