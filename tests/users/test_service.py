"""`UserService` on the database: the unique index on lower(username) decides, never a lookup."""

from __future__ import annotations

import asyncio

import pytest
from advanced_alchemy.exceptions import DuplicateKeyError, IntegrityError
from sqlalchemy import func, select

from ekimo.container import Container
from ekimo.errors import Conflict, InvalidInput, Problem
from ekimo.users.models import User
from ekimo.users.rules import InvalidInputError, UsernameTakenError
from ekimo.users.service import UserRepository, UserService
from tests.conftest import PASSWORD


def test_the_users_errors_are_problems() -> None:
    invalid = InvalidInputError("password", "too short")
    assert isinstance(invalid, InvalidInput)
    assert (invalid.status, invalid.title, invalid.detail) == (
        422,
        "Unprocessable Content",
        "too short",
    )
    assert invalid.extra == {"field": "password"}
    assert (invalid.field, invalid.message) == ("password", "too short")

    taken = UsernameTakenError("Alice")
    assert isinstance(taken, Conflict)
    assert isinstance(taken, Problem)
    assert taken.status == 409
    assert taken.extra == {"field": "username"}
    assert "'Alice' is already taken" in str(taken) == taken.detail


async def test_register_then_find_ignoring_case(container: Container) -> None:
    async with container.session() as session:
        created = await UserService(session).register("Alice", PASSWORD)
    async with container.session() as session:
        found = await UserService(session).find("aLICE")
    assert found is not None
    assert (found.id, found.username) == (created.id, "Alice")


async def test_a_taken_name_is_username_taken_and_the_session_stays_usable(
    container: Container,
) -> None:
    async with container.session() as session:
        users = UserService(session)
        await users.register("alice", PASSWORD)

        with pytest.raises(UsernameTakenError):
            await users.register("ALICE", PASSWORD)

        assert await users.count() == 1


async def test_the_repository_reports_a_duplicate_name_as_a_duplicate_key(
    container: Container,
) -> None:
    async with container.session() as session:
        users = UserRepository(session=session)
        await users.add(User(username="alice", password_hash="x"), auto_commit=True)

        with pytest.raises(DuplicateKeyError):
            await users.add(User(username="Alice", password_hash="x"), auto_commit=True)


async def test_other_integrity_errors_are_not_duplicate_keys(container: Container) -> None:
    async with container.session() as session:
        users = UserRepository(session=session)
        with pytest.raises(IntegrityError) as raised:
            await users.add(User(username="alice"), auto_commit=True)  # no password hash
    assert not isinstance(raised.value, DuplicateKeyError)


async def test_simultaneous_registrations_in_two_sessions_give_one_account(
    container: Container,
) -> None:
    async def register(username: str) -> User | UsernameTakenError:
        async with container.session() as session:
            try:
                return await UserService(session).register(username, PASSWORD)
            except UsernameTakenError as exc:
                return exc

    outcomes = await asyncio.gather(register("race"), register("RACE"))

    assert sorted(type(o).__name__ for o in outcomes) == ["User", "UsernameTakenError"]
    async with container.session() as session:
        names = (await session.execute(select(func.lower(User.username)))).scalars().all()
    assert names == ["race"]
