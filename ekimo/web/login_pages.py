"""Log in, log out and create an account, from the console."""

from __future__ import annotations

from typing import Any

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from ekimo.container import Container
from ekimo.errors import Problem
from ekimo.users.auth import Unauthorized, claims_of, login_rate_limit, principals_of
from ekimo.users.guards import PUBLIC
from ekimo.users.login import log_in, log_out
from ekimo.users.registration import create_account, signup_rate_limit
from ekimo.users.service import UserService, issue_token
from ekimo.web.pages import redirect, render
from ekimo.web.session import (
    CONSOLE_PATH,
    SESSION_COOKIE,
    principal_of,
    session_cookie,
    signed_out,
)

_USERS = {"users": Provide(create_service_provider(UserService))}


def _next_page(target: object) -> str:
    """Where to go after logging in: a console page, never another site."""
    if isinstance(target, str) and target.startswith(CONSOLE_PATH) and "//" not in target:
        return target
    return CONSOLE_PATH


def _address(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


def _signed_in(
    request: Request[Any, Any, Any], token: str, max_age: int, response: Redirect
) -> Redirect:
    response.set_cookie(session_cookie(request, token, max_age))
    return response


@get("/login", opt=PUBLIC)
async def login_page(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Template | Redirect:
    if principal_of(request) is not None:
        return redirect(_next_page(request.query_params.get("next")))
    return render(
        request,
        "login.html",
        next=_next_page(request.query_params.get("next")),
        registration_open=container.settings.registration == "open",
    )


@post("/login", opt=PUBLIC, middleware=[login_rate_limit.middleware], dependencies=_USERS)
async def login(
    request: Request[Any, Any, Any],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
) -> Template | Redirect:
    """The form's credentials count against POST /auth's limit (same store, same address)."""
    form = await request.form()
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    target = _next_page(form.get("next"))
    try:
        access = await log_in(users, container, username, password, _address(request))
    except Unauthorized:
        return render(
            request,
            "login.html",
            status_code=401,
            error="Wrong username or password.",
            username=username,
            next=target,
            registration_open=container.settings.registration == "open",
        )
    return _signed_in(request, access.token, access.expires_in, redirect(target))


@post("/logout", opt=PUBLIC)
async def logout(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Redirect:
    # The session's token ends here, not at its expiry: a copy of the cookie is worth nothing.
    token = request.cookies.get(SESSION_COOKIE)
    claims = claims_of(container, token) if token else None
    if claims is not None:
        await log_out(container, principals_of(request.app.state), claims)
    response = redirect(f"{CONSOLE_PATH}/login", notice="You are logged out.")
    signed_out(response, request)
    return response


@get("/register", opt=PUBLIC)
async def register_page(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Template:
    return render(
        request, "register.html", registration_open=container.settings.registration == "open"
    )


@post("/register", opt=PUBLIC, middleware=[signup_rate_limit.middleware], dependencies=_USERS)
async def register(
    request: Request[Any, Any, Any],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
) -> Template | Redirect:
    """A sign-up follows REGISTRATION like POST /users; the new account is logged in."""
    form = await request.form()
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    registration_open = container.settings.registration == "open"
    if password != str(form.get("password_again") or ""):
        problem = "The two passwords differ: type the same password twice."
    else:
        try:
            user = await create_account(users, container, None, username, password)
        except Problem as exc:
            problem = exc.detail[:1].upper() + exc.detail[1:] + "."
        else:
            access = issue_token(user, container.settings)
            welcome = f"Welcome, {user.username}: your account has the {user.role} role."
            to = redirect(f"{CONSOLE_PATH}/catalog", notice=welcome)
            return _signed_in(request, access.token, access.expires_in, to)
    return render(
        request,
        "register.html",
        status_code=422 if registration_open else 403,
        error=problem,
        username=username,
        registration_open=registration_open,
    )


routes: list[ControllerRouterHandler] = [login_page, login, logout, register_page, register]
