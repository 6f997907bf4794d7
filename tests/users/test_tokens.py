"""Bearer tokens on protected routes: what is accepted, what is a 401, what stays open."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import delete

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings
from ekimo.users.models import User
from tests.conftest import TEST_SECRET, register_and_login, serve
from tests.users.conftest import WHOAMI, whoami

PROBLEM = "application/problem+json"


def _claims(user_id: int, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": secrets.token_hex(8),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    response = await client.get(WHOAMI, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def _assert_401(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["detail"]


async def test_valid_token_reaches_the_handler_with_the_user(
    app_client: httpx.AsyncClient,
) -> None:
    headers = await register_and_login(app_client, "alice")

    response = await app_client.get(WHOAMI, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["username"] == "alice"


async def test_hand_made_hs256_token_with_all_claims_is_accepted(
    app_client: httpx.AsyncClient,
) -> None:
    user_id = await _user_id(app_client, await register_and_login(app_client))
    token = jwt.encode(_claims(user_id), TEST_SECRET, algorithm="HS256")
    assert (await app_client.get(WHOAMI, headers=_bearer(token))).status_code == 200


async def test_no_token_is_401(app_client: httpx.AsyncClient) -> None:
    _assert_401(await app_client.get(WHOAMI))
    assert "POST /auth" in (await app_client.get(WHOAMI)).json()["detail"]


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "Bearer not.a.jwt", "token"]
)
async def test_malformed_authorization_is_401(
    app_client: httpx.AsyncClient, authorization: str
) -> None:
    _assert_401(await app_client.get(WHOAMI, headers={"Authorization": authorization}))


async def test_alg_none_is_401(app_client: httpx.AsyncClient) -> None:
    user_id = await _user_id(app_client, await register_and_login(app_client))
    token = jwt.encode(_claims(user_id), None, algorithm="none")
    assert jwt.get_unverified_header(token)["alg"] == "none"

    _assert_401(await app_client.get(WHOAMI, headers=_bearer(token)))
    # Also with an empty signature appended, as attackers do.
    _assert_401(await app_client.get(WHOAMI, headers=_bearer(token.rstrip(".") + ".")))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS512", "HS384"])
async def test_other_algorithm_with_the_right_key_is_401(
    app_client: httpx.AsyncClient, algorithm: str
) -> None:
    user_id = await _user_id(app_client, await register_and_login(app_client))
    token = jwt.encode(_claims(user_id), TEST_SECRET, algorithm=algorithm)
    _assert_401(await app_client.get(WHOAMI, headers=_bearer(token)))


async def test_bad_signature_is_401(app_client: httpx.AsyncClient) -> None:
    user_id = await _user_id(app_client, await register_and_login(app_client))
    forged = jwt.encode(_claims(user_id), "another-secret-" + "y" * 32, algorithm="HS256")
    _assert_401(await app_client.get(WHOAMI, headers=_bearer(forged)))

    # A real token whose payload names another user, signature left as it was.
    real = jwt.encode(_claims(user_id), TEST_SECRET, algorithm="HS256")
    header, _, signature = real.split(".")
    other = jwt.encode(_claims(user_id + 1), TEST_SECRET, algorithm="HS256").split(".")[1]
    _assert_401(await app_client.get(WHOAMI, headers=_bearer(f"{header}.{other}.{signature}")))


async def test_expired_token_is_401(app_client: httpx.AsyncClient) -> None:
    user_id = await _user_id(app_client, await register_and_login(app_client))
    past = datetime.now(UTC) - timedelta(hours=1)
    token = jwt.encode(
        _claims(user_id, iat=past, exp=past + timedelta(minutes=30)), TEST_SECRET, "HS256"
    )
    _assert_401(await app_client.get(WHOAMI, headers=_bearer(token)))


@pytest.mark.parametrize("missing", ["sub", "iat", "exp", "jti"])
async def test_token_without_a_required_claim_is_401(
    app_client: httpx.AsyncClient, missing: str
) -> None:
    user_id = await _user_id(app_client, await register_and_login(app_client))
    claims = _claims(user_id)
    del claims[missing]
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    _assert_401(await app_client.get(WHOAMI, headers=_bearer(token)))


@pytest.mark.parametrize("sub", ["abc", "-1", "99999999999999999999999", "²"])
async def test_token_with_a_subject_that_is_no_user_id_is_401(
    app_client: httpx.AsyncClient, sub: str
) -> None:
    token = jwt.encode(_claims(1, sub=sub), TEST_SECRET, algorithm="HS256")
    _assert_401(await app_client.get(WHOAMI, headers=_bearer(token)))


async def test_token_of_a_deleted_user_is_401(
    app_client: httpx.AsyncClient, container: Container
) -> None:
    headers = await register_and_login(app_client, "alice")
    assert (await app_client.get(WHOAMI, headers=headers)).status_code == 200

    async with container.session() as session:
        await session.execute(delete(User).where(User.username == "alice"))
        await session.commit()

    # Deleted behind the app's back (no API call): refused once the per-process cache of
    # accounts lapses, within the 5 s the access-control rules allow.
    deadline = time.monotonic() + 5
    response = await app_client.get(WHOAMI, headers=headers)
    while response.status_code == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        response = await app_client.get(WHOAMI, headers=headers)
    _assert_401(response)


async def test_open_routes_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert (await client.get("/docs/openapi.json")).status_code == 200
    assert (await client.get("/docs/assets/swagger-ui.css")).status_code == 200


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_every_other_route_needs_a_token(settings: Settings) -> None:
    """Whatever routes the other domains add: without a token each one is a 401."""
    app = create_app(Container(settings))
    app.register(whoami)
    open_paths = {("/users", "POST"), ("/auth", "POST")}
    checked: list[tuple[str, str]] = []
    async with serve(app) as client:
        for route in app.routes:
            if route.path.startswith("/docs") or route.path in ("/health", "/metrics"):
                continue
            if route.path == "/" or route.path.startswith("/ui"):
                continue  # the console: a cookie, not a token (tests/web/test_permissions.py)
            for method in sorted(getattr(route, "methods", set())):
                if method in ("OPTIONS", "HEAD") or (route.path, method) in open_paths:
                    continue
                response = await client.request(method, _concrete(route.path))
                assert response.status_code == 401, (method, route.path, response.text)
                checked.append((method, route.path))
    assert ("GET", WHOAMI) in checked
    assert all(p not in checked for p in open_paths)


async def test_openapi_declares_the_oauth2_password_scheme(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/docs/openapi.json")).json()

    scheme = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth"
    assert {"OAuth2PasswordBearer": []} in schema["security"]
    # Registration and login are open.
    # Registration is open (an admin's token is read when sent, for a closed registration).
    assert {} in schema["paths"]["/users"]["post"]["security"]
    assert schema["paths"]["/auth"]["post"]["security"] == [{}]
    login_body = schema["paths"]["/auth"]["post"]["requestBody"]["content"]
    assert {"application/x-www-form-urlencoded", "application/json"} <= set(login_body)
    # The receiver reads its raw body: the schema still says what to send.
    received = schema["paths"]["/products"]["post"]["requestBody"]
    products = received["content"]["application/json"]["schema"]["properties"]["products"]
    assert received["required"] is True
    assert (products["type"], products["maxItems"]) == ("array", 10_000)
    assert set(products["items"]["required"]) == {
        "barcode",
        "name",
        "price",
        "quantity",
        "last_updated",
    }
