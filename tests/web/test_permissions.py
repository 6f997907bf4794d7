"""The console's permission matrix: every page and form, for a stranger and for each role,
derived from the routes themselves, so a new page cannot slip through."""

from __future__ import annotations

import re

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from ekimo.users.guards import PERMISSION_KEY, PUBLIC_KEY
from ekimo.users.roles import Permission, Role
from tests.web.conftest import ConsoleAs

ROLES = ("viewer", "editor", "admin", "receiver")
_PARAMETER = re.compile(r"\{(\w+)(:\w+)?\}")


def _concrete(path: str) -> str:
    return _PARAMETER.sub(lambda m: "4006381333931" if m.group(1) == "barcode" else "999999", path)


def _guarded(app: Litestar) -> list[tuple[str, str, Permission]]:
    found: list[tuple[str, str, Permission]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/ui"):
            continue
        for handler in route.route_handlers:
            permission = handler.opt.get(PERMISSION_KEY)
            if handler.opt.get(PUBLIC_KEY) is True or handler.http_methods <= {"OPTIONS", "HEAD"}:
                continue
            assert isinstance(permission, Permission), f"{route.path} declares no permission"
            for method in handler.http_methods - {"OPTIONS", "HEAD"}:
                found.append((method, _concrete(route.path), permission))
    return found


async def test_a_stranger_is_sent_to_log_in_from_every_page(
    app: Litestar, console_as: ConsoleAs
) -> None:
    stranger = await console_as("viewer")
    await stranger.client.post("/ui/logout", data={"_csrf_token": await stranger.csrf_token()})
    for method, path, _ in _guarded(app):
        answer = await stranger.client.request(
            method,
            path,
            data={"_csrf_token": await stranger.csrf_token()},
            files={"file": ("empty.csv", b"barcode,name,price,quantity\n", "text/csv")},
            follow_redirects=False,
        )
        assert answer.status_code in (303, 403), (method, path, answer.status_code)
        if answer.status_code == 303:
            assert answer.headers["location"].startswith("/ui/login"), (method, path)


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_reaches_exactly_what_its_permissions_allow(
    app: Litestar, console_as: ConsoleAs, role: str
) -> None:
    console = await console_as(role)
    for method, path, permission in _guarded(app):
        if (method, path) == ("POST", "/ui/logout"):
            continue
        # Multipart, as the import form (which checks its token in the stream) needs it.
        answer = await console.client.request(
            method,
            path,
            data={"_csrf_token": await console.csrf_token()},
            files={"file": ("empty.csv", b"barcode,name,price,quantity\n", "text/csv")},
            follow_redirects=False,
        )
        if permission.allows(Role(role)):
            assert answer.status_code != 403, (role, method, path, answer.text[:300])
            assert not answer.headers.get("location", "").startswith("/ui/login"), (role, path)
        else:
            assert answer.status_code == 403, (role, method, path, answer.status_code)
            assert permission.refusal in answer.text, (role, method, path)
            assert answer.headers["content-type"].startswith("text/html")
