"""Console clients for the page tests: each an httpx client of the real app with its own cookie
jar, logged in through the console's form, posting forms with their CSRF token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.conftest import PASSWORD, register_and_login

CSRF_COOKIE = "ekimo_csrf"


class Console:
    """One browser's worth of cookies on the console."""

    def __init__(self, client: httpx.AsyncClient, username: str) -> None:
        self.client = client
        self.username = username

    async def csrf_token(self) -> str:
        token = self.client.cookies.get(CSRF_COOKIE, path="/ui")
        if token is None:
            await self.client.get("/ui/login")
            token = self.client.cookies.get(CSRF_COOKIE, path="/ui")
        assert token is not None, "the console set no CSRF cookie"
        return token

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def post(
        self,
        path: str,
        data: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A form post as a browser sends it: the form's token first, then its fields."""
        fields = {"_csrf_token": await self.csrf_token(), **(data or {})}
        return await self.client.post(path, data=fields, files=files, **kwargs)


async def log_in(console: Console, password: str = PASSWORD) -> httpx.Response:
    answer = await console.post(
        "/ui/login", data={"username": console.username, "password": password}
    )
    # A receiver lands on the catalog it may not read: a 403 page, logged in all the same.
    assert answer.status_code in (200, 403), answer.text
    assert "Log out" in answer.text
    return answer


ConsoleAs = Callable[[str], Awaitable[Console]]


@pytest.fixture
async def console_as(app: Litestar, client: httpx.AsyncClient) -> AsyncIterator[ConsoleAs]:
    """`await console_as("editor")`: a new account of that role, logged in to the console. The
    first call also makes the database's first account, `admin` (an admin)."""
    clients: list[httpx.AsyncClient] = []
    admin_headers: dict[str, str] = {}

    async def make(role: str) -> Console:
        if not admin_headers:
            admin_headers.update(await register_and_login(client, "admin"))
        username = "admin" if role == "admin" else f"{role}-user"
        if role != "admin":
            created = await client.post(
                "/users",
                json={"username": username, "password": PASSWORD, "role": role},
                headers=admin_headers,
            )
            assert created.status_code == 201, created.text
        browser = httpx.AsyncClient(
            transport=client._transport,  # pyright: ignore[reportPrivateUsage] (the app in-process)
            base_url=str(client.base_url),
            follow_redirects=True,
        )
        clients.append(browser)
        console = Console(browser, username)
        await log_in(console)
        return console

    yield make
    for browser in clients:
        await browser.aclose()
