"""The permission matrix: every route and every kind of caller, over HTTP, against the role table
of the access-control issue; and deny by default (a route that declares nothing is refused)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.routes import HTTPRoute
from sqlalchemy import text

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings
from ekimo.users.auth import reset_rate_limits
from ekimo.users.guards import PERMISSION_KEY, PUBLIC_KEY
from ekimo.users.principals import secret_hash
from tests.conftest import PASSWORD, register_and_login, serve

CALLERS = ("anonymous", "viewer", "editor", "admin", "receiver", "revoked key", "deactivated")
OPEN = {"anonymous", "viewer", "editor", "admin", "receiver", "revoked key", "deactivated"}
READERS = {"viewer", "editor", "admin"}
WRITERS = {"editor", "admin"}
SENDERS = {"receiver", "editor", "admin"}
ADMINS = {"admin"}

CSV = b"barcode,name,price,quantity\n1,A,1,1\n"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    allowed: set[str]
    json: Any = None
    files: Any = None
    data: Any = None


# Each route of the app once (a test below checks that none is missing). Bodies are valid
# where that is cheap, so an allowed call usually succeeds; any answer but 401/403 counts as
# let through.
MATRIX = [
    Call("GET", "/health", OPEN),
    # Public, but the details need an admin's credential.
    Call("GET", "/health?verbose=true", ADMINS),
    Call("GET", "/metrics", OPEN),
    Call("POST", "/auth", OPEN, data={"username": "root", "password": PASSWORD}),
    # Open to all, but a credential that is sent must be valid.
    Call(
        "POST",
        "/users",
        OPEN - {"revoked key", "deactivated"},
        json={"username": "newbie", "password": PASSWORD},
    ),
    Call("GET", "/products", READERS),
    Call("GET", "/products/export", READERS),
    Call("GET", "/products/1", READERS),
    Call("PUT", "/products", WRITERS, files={"file": ("p.csv", CSV)}),
    Call("POST", "/products", SENDERS, json={"products": []}),
    Call("GET", "/imports", READERS),
    Call("GET", "/imports/1", READERS),
    Call("GET", "/imports/1/errors.csv", READERS),
    Call("GET", "/sync/runs", READERS),
    Call("GET", "/sync/runs/1", READERS),
    Call("GET", "/sync/status", READERS),
    Call("POST", "/sync", WRITERS),
    Call("GET", "/users/me", READERS),
    Call(
        "POST",
        "/users/me/password",
        READERS,
        # Too short a new password: checked, refused (422), and the caller's token stays valid.
        json={"current_password": PASSWORD, "new_password": "short"},
    ),
    Call("GET", "/users", ADMINS),
    Call("GET", "/users/999999", ADMINS),
    Call("PATCH", "/users/999999", ADMINS, json={"active": True}),
    Call("DELETE", "/users/999999", ADMINS),
    Call("POST", "/api-keys", READERS, json={"name": "k", "role": "viewer"}),
    Call("GET", "/api-keys", READERS),
    Call("DELETE", "/api-keys/999999", READERS),
    Call("GET", "/audit", ADMINS),
    # Last: an allowed call ends the caller's token (a key's is a 400, let through).
    Call("DELETE", "/auth", OPEN - {"anonymous", "revoked key", "deactivated"}),
]


@pytest.fixture
async def app(settings: Settings) -> Litestar:
    """The app on a queue of its own: the matrix's POST /sync calls queue jobs that no later
    test's worker must run. (Its login limit is counted under that name too: reset here.)"""
    own = Container(settings.with_values(queue_name=f"{settings.queue_name}-matrix"))
    await reset_rate_limits(own)
    return create_app(own)


async def _user(client: httpx.AsyncClient, container: Container, name: str, role: str) -> str:
    """A token of a new account of `role` (the account is set up in the database)."""
    headers = await register_and_login(client, name)
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = :role WHERE lower(username) = :name"),
            {"role": role, "name": name},
        )
    return headers["Authorization"]


async def _revoked_key(container: Container) -> str:
    secret = "ekimo_" + secrets.token_urlsafe(32)
    async with container.engine.begin() as conn:
        owner = await conn.scalar(text("SELECT id FROM users ORDER BY id LIMIT 1"))
        key_id = await conn.scalar(
            text(
                "INSERT INTO api_keys (user_id, name, role, prefix, secret_hash, "
                "user_token_version, created_at, updated_at) "
                "VALUES (:owner, 'gone', 'admin', :prefix, :hash, 0, now(), now()) RETURNING id"
            ),
            {"owner": owner, "prefix": secret[:12], "hash": secret_hash(secret)},
        )
        await conn.execute(text("DELETE FROM api_keys WHERE id = :id"), {"id": key_id})
    return f"Bearer {secret}"


@pytest.fixture
async def credentials(client: httpx.AsyncClient, container: Container) -> dict[str, str | None]:
    admin = (await register_and_login(client, "root"))["Authorization"]
    deactivated = await _user(client, container, "gone-soon", "editor")
    async with container.engine.begin() as conn:
        await conn.execute(text("UPDATE users SET active = false WHERE username = 'gone-soon'"))
    return {
        "anonymous": None,
        "admin": admin,
        "viewer": await _user(client, container, "vera", "viewer"),
        "editor": await _user(client, container, "eddie", "editor"),
        "receiver": await _user(client, container, "rita", "receiver"),
        "revoked key": await _revoked_key(container),
        "deactivated": deactivated,
    }


async def _call(client: httpx.AsyncClient, call: Call, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return await client.request(
        call.method,
        call.path,
        headers=headers,
        json=call.json,
        files=call.files,
        data=call.data,
    )


async def test_every_route_answers_every_caller_as_the_role_table_says(
    app: Litestar, client: httpx.AsyncClient, credentials: dict[str, str | None]
) -> None:
    wrong: list[str] = []
    for number, call in enumerate(MATRIX):
        for caller in CALLERS:
            if caller == "revoked key":
                # Wrong keys count against the per-address limit of failed logins: each call
                # from an address of its own, so every row shows the 401, not the 429.
                async with _from_address(app, f"192.0.2.{number + 1}") as other:
                    response = await _call(other, call, credentials[caller])
            else:
                response = await _call(client, call, credentials[caller])
            status = response.status_code
            if caller in call.allowed:
                ok = status not in (401, 403)
            elif caller in ("anonymous", "revoked key", "deactivated"):
                ok = status == 401
            else:
                ok = status == 403 and "role" in response.json().get("detail", "")
            if not ok:
                wrong.append(f"{call.method} {call.path} as {caller}: {status} {response.text}")
    assert wrong == []


async def test_a_refusal_is_a_problem_document_naming_the_missing_role(
    client: httpx.AsyncClient, credentials: dict[str, str | None]
) -> None:
    response = await client.put(
        "/products",
        files={"file": ("p.csv", CSV)},
        headers={"Authorization": credentials["viewer"] or ""},
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 403
    assert body["detail"].startswith("importing needs the editor role")
    assert "viewer" in body["detail"]


@contextlib.asynccontextmanager
async def _from_address(app: Litestar, host: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the running `app` (the `client` fixture started it) with another address."""
    transport = httpx.ASGITransport(app=app, client=(host, 1234))  # pyright: ignore[reportArgumentType]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as c:
        yield c


def _routes(app: Litestar) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        # The console (cookie sessions) has its own matrix: tests/web/test_permissions.py.
        if isinstance(route, HTTPRoute) and not route.path.startswith(("/docs", "/ui")):
            if route.path == "/":
                continue
            for method in route.methods - {"OPTIONS", "HEAD"}:
                found.add((method, route.path_format))
    return found


def test_the_matrix_covers_every_route(container: Container) -> None:
    app = create_app(container)
    templates = {
        (call.method, call.path.replace("999999", "{id}").replace("/1", "/{id}")) for call in MATRIX
    }
    normalised = {
        (
            method,
            path.replace("{barcode}", "{id}")
            .replace("{import_id}", "{id}")
            .replace("{run_id}", "{id}")
            .replace("{user_id}", "{id}")
            .replace("{key_id}", "{id}"),
        )
        for method, path in _routes(app)
    }
    assert normalised - templates == set(), "routes missing from the permission matrix"


def test_every_route_declares_a_permission_or_that_it_is_public(container: Container) -> None:
    app = create_app(container)
    undeclared = [
        f"{sorted(route.methods)} {route.path}"
        for route in app.routes
        if isinstance(route, HTTPRoute) and not route.path.startswith("/docs")
        for handler in route.route_handlers
        # Litestar's own OPTIONS answer lists the allowed methods; the guard lets it through.
        if handler.http_methods != {"OPTIONS"}
        and PERMISSION_KEY not in handler.opt
        and not handler.opt.get(PUBLIC_KEY)
    ]
    assert undeclared == []


@get("/test-only/undeclared", sync_to_thread=False)
def undeclared_route() -> dict[str, str]:
    return {"reached": "yes"}


async def test_a_route_that_declares_no_permission_is_refused_to_everyone(
    container: Container, credentials: dict[str, str | None]
) -> None:
    app = create_app(container)
    app.register(undeclared_route)
    async with serve(app) as client:
        for caller in ("admin", "editor", "anonymous"):
            authorization = credentials[caller]
            headers = {"Authorization": authorization} if authorization else {}
            response = await client.get("/test-only/undeclared", headers=headers)
            assert response.status_code in (401, 403), caller
            assert "reached" not in response.text
        admin = await client.get(
            "/test-only/undeclared", headers={"Authorization": credentials["admin"] or ""}
        )
        assert admin.status_code == 403
        assert "declares no permission" in admin.json()["detail"]


async def test_openapi_shows_each_operation_s_roles_and_its_403(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/docs/openapi.json")).json()
    upload = schema["paths"]["/products"]["put"]
    assert "**Roles:** admin, editor." in upload["description"]
    assert "403" in upload["responses"]
    audit = schema["paths"]["/audit"]["get"]
    assert "**Roles:** admin." in audit["description"]
