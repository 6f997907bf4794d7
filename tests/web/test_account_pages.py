"""The console's accounts and API keys pages, over HTTP: what an admin sees and changes, what
the changed accounts and keys feel, and the refusals as readable sentences."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import select

from ekimo.container import Container
from ekimo.users.models import AuditEvent, User
from tests.conftest import PASSWORD
from tests.web.conftest import Console, ConsoleAs, log_in

SECRET = re.compile(r'<code id="key-secret"[^>]*>(ekimo_[A-Za-z0-9_-]+)</code>')
# The change must be felt within 5 s (the principal cache's promise to other processes).
DEADLINE_S = 5.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until it holds, failing after `DEADLINE_S`."""
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S} s: {what}"
        await asyncio.sleep(0.1)


async def account_id(container: Container, username: str) -> int:
    async with container.engine.connect() as conn:
        found = await conn.scalar(select(User.id).where(User.username == username))
    assert found is not None, username
    return found


async def audited(container: Container, action: str) -> list[dict[str, object]]:
    async with container.engine.connect() as conn:
        rows = await conn.scalars(select(AuditEvent.details).where(AuditEvent.action == action))
        return list(rows)


def text_of(answer: httpx.Response) -> str:
    """The page's text with entities decoded (Jinja escapes quotes and apostrophes)."""
    return html.unescape(answer.text)


def row_of(page: httpx.Response, username: str) -> str:
    """The accounts table's row of `username`."""
    rows = re.findall(r"<tr>(.*?)</tr>", page.text, re.S)
    found = [row for row in rows if f"<td>{username}" in row]
    assert len(found) == 1, f"no single row for {username}"
    return found[0]


async def signed_out(console: Console) -> bool:
    return "/ui/login" in str((await console.get("/ui/catalog")).url)


async def test_an_admin_sees_every_account_with_its_role_and_state(
    console_as: ConsoleAs, container: Container
) -> None:
    admin = await console_as("admin")
    await console_as("viewer")
    await console_as("editor")
    page = await admin.get("/ui/accounts")
    assert page.status_code == 200
    for header in ("Username", "Role", "State", "Created"):
        assert f'<th scope="col">{header}</th>' in page.text
    viewer = row_of(page, "viewer-user")
    assert "<td>viewer</td>" in viewer
    assert ">active</span>" in viewer
    assert "Deactivate" in viewer
    assert 'for="role-' in viewer
    assert "Role for viewer-user</label>" in viewer
    assert "<td>editor</td>" in row_of(page, "editor-user")
    assert "<td>admin</td>" in row_of(page, "admin")
    assert '<a href="/ui/keys">API keys</a>' in page.text
    assert 'id="new-username"' in page.text
    assert 'for="new-password">Password' in page.text


async def test_changing_a_role_ends_the_sessions_and_the_new_login_has_the_role(
    console_as: ConsoleAs, container: Container
) -> None:
    admin = await console_as("admin")
    viewer = await console_as("viewer")
    assert "(viewer)" in (await viewer.get("/ui/catalog")).text
    target = await account_id(container, "viewer-user")

    answer = await admin.post(f"/ui/accounts/{target}/role", data={"role": "editor"})
    assert answer.status_code == 200
    assert "viewer-user now has the editor role" in answer.text
    assert "<td>editor</td>" in row_of(answer, "viewer-user")
    assert await audited(container, "user.role_changed") == [
        {"username": "viewer-user", "from": "viewer", "to": "editor"}
    ]

    # A change ends the account's tokens (the API's rule): its console session is over...
    await eventually(lambda: signed_out(viewer), "the changed account's session ends")
    # ...and its next session has the new role.
    await log_in(viewer)
    await eventually(
        lambda: _has(viewer, "/ui/catalog", "(editor)"), "the new session shows the editor role"
    )


async def _has(console: Console, path: str, text: str) -> bool:
    return text in (await console.get(path)).text


async def test_deactivating_an_account_signs_it_out_and_refuses_its_login(
    console_as: ConsoleAs, container: Container
) -> None:
    admin = await console_as("admin")
    editor = await console_as("editor")
    target = await account_id(container, "editor-user")

    answer = await admin.post(f"/ui/accounts/{target}/deactivate")
    assert answer.status_code == 200
    assert "editor-user is now inactive" in answer.text
    row = row_of(answer, "editor-user")
    assert ">inactive</span>" in row
    assert ">Activate</button>" in row

    await eventually(lambda: signed_out(editor), "the deactivated account's session ends")
    refused = await editor.post("/ui/login", data={"username": "editor-user", "password": PASSWORD})
    assert refused.status_code == 401
    assert "Wrong username or password." in refused.text

    again = await admin.post(f"/ui/accounts/{target}/activate")
    assert "editor-user is now active" in again.text
    await log_in(editor)


async def test_the_apis_refusals_are_sentences_on_the_page(
    console_as: ConsoleAs, container: Container
) -> None:
    admin = await console_as("admin")
    await console_as("viewer")
    me = await account_id(container, "admin")

    alone = await admin.post(f"/ui/accounts/{me}/deactivate")
    assert alone.status_code == 409
    assert alone.headers["content-type"].startswith("text/html")
    assert (
        "Admin is the last active admin and cannot be deactivated; "
        "make another account an admin first." in alone.text
    )
    demoted = await admin.post(f"/ui/accounts/{me}/role", data={"role": "viewer"})
    assert demoted.status_code == 409
    assert "cannot be demoted" in demoted.text
    assert "<td>admin</td>" in row_of(demoted, "admin")

    taken = await admin.post(
        "/ui/accounts", data={"username": "Viewer-User", "password": PASSWORD, "role": "viewer"}
    )
    assert taken.status_code == 409
    assert "Username 'Viewer-User' is already taken" in text_of(taken)
    assert 'value="Viewer-User"' in taken.text  # what was typed stays in the form

    short = await admin.post(
        "/ui/accounts", data={"username": "bob", "password": "short", "role": "viewer"}
    )
    assert short.status_code == 422
    assert "Password must be 8 to 72 bytes" in short.text

    missing = await admin.post("/ui/accounts/999999/deactivate")
    assert missing.status_code == 404
    assert "No account has id 999999." in missing.text


async def test_an_admin_creates_an_account_that_can_log_in(
    console_as: ConsoleAs, client: httpx.AsyncClient, container: Container
) -> None:
    admin = await console_as("admin")
    created = await admin.post(
        "/ui/accounts", data={"username": "bob", "password": PASSWORD, "role": "viewer"}
    )
    assert created.status_code == 200
    assert "Account bob created with the viewer role." in created.text
    assert "<td>viewer</td>" in row_of(created, "bob")
    assert [d["username"] for d in await audited(container, "user.created")][-1] == "bob"
    async with httpx.AsyncClient(
        transport=client._transport,  # pyright: ignore[reportPrivateUsage] (the app in-process)
        base_url=str(client.base_url),
        follow_redirects=True,
    ) as browser:
        page = await log_in(Console(browser, "bob"))
        assert "bob <small>(viewer)</small>" in page.text


async def test_an_admin_who_changes_their_own_account_logs_in_again(
    console_as: ConsoleAs, container: Container
) -> None:
    admin = await console_as("admin")
    second = await admin.post(
        "/ui/accounts", data={"username": "admin2", "password": PASSWORD, "role": "admin"}
    )
    assert second.status_code == 200
    me = await account_id(container, "admin")
    answer = await admin.post(f"/ui/accounts/{me}/role", data={"role": "viewer"})
    assert answer.status_code == 200
    assert str(answer.url).endswith(
        "/ui/login?notice=You+changed+your+own+account%3A+log+in+again."
    )
    assert "You changed your own account: log in again." in answer.text
    page = await log_in(admin)
    assert "admin <small>(viewer)</small>" in page.text
    assert (await admin.get("/ui/accounts")).status_code == 403


async def test_an_editor_is_refused_the_accounts_pages(
    console_as: ConsoleAs, container: Container
) -> None:
    await console_as("admin")
    editor = await console_as("editor")
    page = await editor.get("/ui/accounts")
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "managing accounts needs the admin role" in page.text
    assert 'href="/ui/accounts"' not in page.text  # no Accounts link in its navigation

    me = await account_id(container, "editor-user")
    post = await editor.post(f"/ui/accounts/{me}/role", data={"role": "admin"})
    assert post.status_code == 403
    assert "managing accounts needs the admin role" in post.text
    assert "(editor)" in (await editor.get("/ui/catalog")).text


async def test_a_form_post_without_its_csrf_token_is_refused(
    console_as: ConsoleAs, container: Container
) -> None:
    admin = await console_as("admin")
    await console_as("viewer")
    target = await account_id(container, "viewer-user")
    answer = await admin.client.post(f"/ui/accounts/{target}/deactivate", data={})
    assert answer.status_code == 403
    assert "reload the page" in answer.text
    assert ">active</span>" in row_of(await admin.get("/ui/accounts"), "viewer-user")


async def test_a_key_shows_its_secret_once_works_and_stops_when_revoked(
    console_as: ConsoleAs, client: httpx.AsyncClient, container: Container
) -> None:
    await console_as("admin")
    editor = await console_as("editor")
    form = await editor.get("/ui/keys")
    assert form.status_code == 200
    for label in ("Name", "Role", "Expires in days"):
        assert f">{label}</label>" in form.text
    assert '<option value="admin"' not in form.text  # an editor cannot grant it

    created = await editor.post(
        "/ui/keys", data={"name": "shop feed", "role": "viewer", "expires_days": "30"}
    )
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    found = SECRET.search(created.text)
    assert found, created.text
    secret = found.group(1)
    assert 'data-copy="key-secret">Copy</button>' in created.text
    assert "it will not be shown again" in created.text
    assert [d["name"] for d in await audited(container, "api_key.created")] == ["shop feed"]

    listing = await editor.get("/ui/keys")
    assert secret not in listing.text
    assert "<td>shop feed</td>" in listing.text
    assert secret[:12] in listing.text
    assert ">active</span>" in listing.text

    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/products", headers=bearer)).status_code == 200

    key_id = re.search(r'action="/ui/keys/(\d+)/revoke"', listing.text)
    assert key_id
    revoked = await editor.post(f"/ui/keys/{key_id.group(1)}/revoke")
    assert revoked.status_code == 200
    assert "API key shop feed" in revoked.text
    assert "is revoked" in revoked.text
    assert "No API keys yet." in revoked.text

    async def refused() -> bool:
        return (await client.get("/products", headers=bearer)).status_code == 401

    await eventually(refused, "the revoked key is refused")
    assert len(await audited(container, "api_key.revoked")) == 1


async def test_a_key_above_the_accounts_role_is_refused_with_a_sentence(
    console_as: ConsoleAs,
) -> None:
    await console_as("admin")
    viewer = await console_as("viewer")
    form = await viewer.get("/ui/keys")
    assert '<option value="viewer"' in form.text
    assert '<option value="editor"' not in form.text

    refused = await viewer.post("/ui/keys", data={"name": "too strong", "role": "editor"})
    assert refused.status_code == 403
    assert "An API key's role may not exceed its owner's" in text_of(refused)
    assert 'value="too strong"' in refused.text
    assert SECRET.search(refused.text) is None

    for days in ("0", "3651", "²", "1.5"):
        bad_days = await viewer.post(
            "/ui/keys", data={"name": "x", "role": "viewer", "expires_days": days}
        )
        assert bad_days.status_code == 422, days
        assert "Expires in days must be a whole number from 1 to 3650" in bad_days.text


async def test_an_admin_sees_and_revokes_everyones_keys(
    console_as: ConsoleAs, container: Container
) -> None:
    admin = await console_as("admin")
    editor = await console_as("editor")
    await editor.post("/ui/keys", data={"name": "editor key", "role": "editor"})
    listing = await admin.get("/ui/keys")
    assert '<th scope="col">Owner</th>' in listing.text
    assert "<td>editor-user</td>" in listing.text
    key_id = re.search(r'action="/ui/keys/(\d+)/revoke"', listing.text)
    assert key_id
    # The editor sees its own key only; another's id is not found for it.
    mine = await editor.get("/ui/keys")
    assert "<td>editor key</td>" in mine.text
    assert '<th scope="col">Owner</th>' not in mine.text

    revoked = await admin.post(f"/ui/keys/{key_id.group(1)}/revoke")
    assert "API key editor key" in revoked.text
    gone = await editor.post(f"/ui/keys/{key_id.group(1)}/revoke")
    assert gone.status_code == 404
    assert f"There is no API key {key_id.group(1)}." in gone.text
