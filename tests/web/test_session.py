"""The console's session and its protections, over HTTP (the browser tests drive the pages)."""

from __future__ import annotations

import re

import httpx

from tests.conftest import PASSWORD, register_and_login

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def _form_token(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    found = CSRF.search(page.text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


async def _log_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    token = await _form_token(client, "/ui/login")
    return await client.post(
        "/ui/login",
        data={"username": username, "password": password, "_csrf_token": token},
    )


async def test_root_and_pages_lead_a_stranger_to_the_login_form(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert str(page.url).endswith("/ui/login?next=%2Fui%2Fcatalog")
    assert 'for="username">Username' in page.text
    assert 'for="password">Password' in page.text


async def test_logging_in_sets_an_httponly_lax_cookie_and_logging_out_drops_it(
    client: httpx.AsyncClient,
) -> None:
    await register_and_login(client, "alice")
    answer = await _log_in(client, "alice", PASSWORD)
    assert answer.status_code == 200
    assert str(answer.url).endswith("/ui/catalog") or "/ui/catalog" in str(answer.url)
    cookie = next(
        h
        for h in answer.history[0].headers.get_list("set-cookie")
        if h.startswith("ekimo_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Max-Age=1800" in cookie
    assert "Log out" in answer.text

    session = client.cookies.get("ekimo_session", path="/ui")
    assert session is not None
    token = await _form_token(client, "/ui/catalog")
    out = await client.post("/ui/logout", data={"_csrf_token": token})
    assert "You are logged out." in out.text
    again = await client.get("/ui/catalog")
    assert "/ui/login" in str(again.url)
    # A copy of the cookie (or its token as a bearer) is worth nothing after the log-out.
    copied = await client.get(
        "/ui/catalog", headers={"Cookie": f"ekimo_session={session}"}, follow_redirects=False
    )
    assert copied.status_code in (302, 303), copied.text
    assert "/ui/login" in copied.headers["location"]
    bearer = await client.get("/users/me", headers={"Authorization": f"Bearer {session}"})
    assert bearer.status_code == 401


async def test_wrong_name_and_wrong_password_read_the_same(client: httpx.AsyncClient) -> None:
    await register_and_login(client, "alice")
    unknown = await _log_in(client, "nobody", PASSWORD)
    wrong = await _log_in(client, "alice", "not-the-password")
    assert unknown.status_code == wrong.status_code == 401
    assert "Wrong username or password." in unknown.text
    assert "Wrong username or password." in wrong.text


async def test_a_post_without_the_form_token_is_refused_with_a_page(
    client: httpx.AsyncClient,
) -> None:
    await register_and_login(client, "alice")
    await client.get("/ui/login")  # the CSRF cookie, not the form's token
    answer = await client.post("/ui/login", data={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert "reload the page" in answer.text
    assert "ekimo_session" not in answer.headers.get("set-cookie", "")


async def test_an_unknown_console_page_is_a_readable_404(client: httpx.AsyncClient) -> None:
    answer = await client.get("/ui/no-such-page")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "there is no page /ui/no-such-page" in answer.text
