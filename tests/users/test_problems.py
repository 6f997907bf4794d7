"""The users routes' errors, as whole problem documents (status, title, detail, members)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from litestar import Litestar
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo.container import Container
from ekimo.problem_documents import problem_details_plugin
from ekimo.users.controller import register
from ekimo.users.schemas import USERNAME_RULE
from tests.conftest import PASSWORD, serve
from tests.problems import problem_of

PROBLEM = "application/problem+json"


async def test_a_rule_broken_in_the_service_is_a_422_document(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/users", json={"username": "a b", "password": PASSWORD})

    assert problem_of(response, 422) == {
        "status": 422,
        "title": "Unprocessable Content",
        "detail": USERNAME_RULE,
        "field": "username",
    }


async def test_a_body_failing_validation_is_the_same_kind_of_422_document(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.post("/users", json={"username": "alice"})
    mistyped = await client.post("/users", json={"username": "alice", "password": 5})

    assert problem_of(missing, 422) == {
        "status": 422,
        "title": "Unprocessable Content",
        "detail": "password is required",
        "field": "password",
    }
    assert problem_of(mistyped, 422) == {
        "status": 422,
        "title": "Unprocessable Content",
        "detail": "password must be a string",
        "field": "password",
    }


async def test_the_validation_422_does_not_depend_on_middleware_around_the_route(
    container: Container,
) -> None:
    """POST /users alone, with the app's problem mapping and no middleware at all."""

    async def db_session() -> AsyncIterator[AsyncSession]:
        async with container.session() as session:
            yield session

    def provide_container() -> Container:
        return container

    app = Litestar(
        [register],
        dependencies={
            "db_session": Provide(db_session),
            "container": Provide(provide_container, sync_to_thread=False),
        },
        signature_namespace={"AsyncSession": AsyncSession},
        plugins=[problem_details_plugin()],
    )
    async with serve(app) as bare:
        response = await bare.post("/users", json={"username": "alice"})

    assert problem_of(response, 422)["field"] == "password"


async def test_a_taken_name_is_a_409_document_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    assert (
        await client.post("/users", json={"username": "Alice", "password": PASSWORD})
    ).is_success

    again = await client.post("/users", json={"username": "aLICE", "password": PASSWORD})

    assert problem_of(again, 409) == {
        "status": 409,
        "title": "Conflict",
        "detail": "username 'aLICE' is already taken (names are compared ignoring case)",
        "field": "username",
    }


async def test_simultaneous_registrations_ignoring_case_give_one_201_and_one_409_document(
    client: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(
        *(
            client.post("/users", json={"username": name, "password": PASSWORD})
            for name in ("Twin", "tWIN")
        )
    )

    by_status = {r.status_code: r for r in responses}
    assert sorted(by_status) == [201, 409]
    assert problem_of(by_status[409], 409)["field"] == "username"


async def test_a_login_in_another_media_type_is_a_415_document(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/auth", content=b"alice", headers={"content-type": "text/plain"})

    assert problem_of(response, 415) == {
        "status": 415,
        "title": "Unsupported Media Type",
        "detail": "send application/x-www-form-urlencoded (username, password) or JSON",
    }


async def test_a_login_body_that_is_not_json_is_a_422_document(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/auth", content=b"{", headers={"content-type": "application/json"}
    )

    assert problem_of(response, 422) == {
        "status": 422,
        "title": "Unprocessable Content",
        "detail": "the body is not valid JSON",
        "field": "body",
    }
