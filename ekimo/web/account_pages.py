"""Accounts (admins: list, create, change a role, deactivate) and API keys (every signed-in
account its own, an admin everyone's: list, create with the secret shown once, revoke).

The pages translate forms into the calls the API makes (`create_account`,
`apply_account_change`, `issue_key`, `revoke_key`): the same rules, refusals, audit records and
principal-cache drops. A refusal re-renders the page with the service's sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.di import NamedDependency, Provide
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from ekimo.container import Container
from ekimo.errors import Problem
from ekimo.params import Id, Offset
from ekimo.users.auth import principals_of
from ekimo.users.guards import allow
from ekimo.users.keys import ApiKeyService, ListedKey, issue_key, owner_filter, revoke_key
from ekimo.users.models import User
from ekimo.users.principals import Principal
from ekimo.users.registration import create_account
from ekimo.users.roles import MANAGE_ACCOUNTS, OWN_ACCOUNT, ROLES, Role, may_grant
from ekimo.users.service import UserService, apply_account_change
from ekimo.web.pages import redirect, render, sentence
from ekimo.web.session import CONSOLE_PATH, signed_out

ACCOUNTS = f"{CONSOLE_PATH}/accounts"
KEYS = f"{CONSOLE_PATH}/keys"
PAGE_SIZE = 50
# A key's lifetime from the form; the CLI's --expires-days has no upper bound, a form needs one.
MAX_EXPIRY_DAYS = 3650
_USERS = {"users": Provide(create_service_provider(UserService))}
_KEYS = {"keys": Provide(create_service_provider(ApiKeyService))}
# The secret is in this response only: no browser or proxy may keep a copy.
_NO_STORE = {"Cache-Control": "no-store"}


def _when(moment: datetime | None, empty: str = "—") -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else empty


def _field(form: FormMultiDict, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _signed_in(request: Request[Any, Any, Any]) -> Principal:
    # The route's permission let the caller in, so the session resolved to a principal.
    user = dict(request.scope).get("user")
    assert isinstance(user, Principal), "the guard admits only signed-in principals"
    return user


@dataclass(frozen=True, slots=True)
class Pager:
    """Previous/next links of a listing (`offset` in the query string)."""

    offset: int
    total: int
    shown: int

    @property
    def previous(self) -> int | None:
        return max(self.offset - PAGE_SIZE, 0) if self.offset > 0 else None

    @property
    def next(self) -> int | None:
        return self.offset + PAGE_SIZE if self.offset + PAGE_SIZE < self.total else None


# -- Accounts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    username: str
    role: str
    active: bool
    created: str
    created_iso: str
    is_you: bool


def _account_row(user: User, you: Principal) -> AccountRow:
    return AccountRow(
        id=user.id,
        username=user.username,
        role=user.role,
        active=user.active,
        created=_when(user.created_at),
        created_iso=user.created_at.isoformat(),
        is_you=user.id == you.user_id,
    )


async def _accounts_page(
    request: Request[Any, Any, Any],
    users: UserService,
    container: Container,
    *,
    offset: int = 0,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """The accounts list; a refused form comes back here with `error` and what was typed."""
    you = _signed_in(request)
    items, total = await users.page(limit=PAGE_SIZE, offset=offset)
    context.setdefault("new_role", container.settings.registration_role)
    return render(
        request,
        "accounts.html",
        status_code=status_code,
        accounts=[_account_row(user, you) for user in items],
        pager=Pager(offset=offset, total=total, shown=len(items)),
        roles=ROLES,
        registration_closed=container.settings.registration == "closed",
        **context,
    )


@get("/accounts", opt=allow(MANAGE_ACCOUNTS), dependencies=_USERS)
async def accounts_page(
    request: Request[Any, Any, Any],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
    offset: Offset = 0,
) -> Template:
    return await _accounts_page(request, users, container, offset=offset)


@post("/accounts", opt=allow(MANAGE_ACCOUNTS), dependencies=_USERS)
async def create_account_form(
    request: Request[Any, Any, Any],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
) -> Template | Redirect:
    """An admin creates an account (whatever REGISTRATION says), as POST /users with a role."""
    form = await request.form()
    username, role = _field(form, "username"), _field(form, "role")
    password = form.get("password")
    try:
        if role not in ROLES:
            raise Problem(f"choose a role: {', '.join(ROLES)}", status=422)
        user = await create_account(
            users,
            container,
            _signed_in(request),
            username,
            password if isinstance(password, str) else "",
            role,
        )
    except Problem as exc:
        return await _accounts_page(
            request,
            users,
            container,
            status_code=exc.status,
            error=sentence(exc.detail),
            new_username=username,
            new_role=role,
        )
    return redirect(ACCOUNTS, notice=f"Account {user.username} created with the {user.role} role.")


async def _change(
    request: Request[Any, Any, Any],
    users: UserService,
    container: Container,
    user_id: int,
    *,
    role: Role | None = None,
    active: bool | None = None,
) -> Template | Redirect:
    """PATCH /users/{id}'s work for a form; a refusal is shown on the accounts page."""
    you = _signed_in(request)
    principals = principals_of(request.app.state)
    try:
        change = await apply_account_change(
            users, container, principals, you, user_id, role=role, active=active
        )
    except Problem as exc:
        return await _accounts_page(
            request, users, container, status_code=exc.status, error=sentence(exc.detail)
        )
    user = change.user
    if not change.changed:
        same = f"has the {user.role} role" if role is not None else f"is {_state(user.active)}"
        return redirect(ACCOUNTS, notice=f"{user.username} already {same}; nothing changed.")
    if user.id == you.user_id:
        # Any change ends the account's tokens, this session's too.
        to = redirect(f"{CONSOLE_PATH}/login", notice="You changed your own account: log in again.")
        signed_out(to, request)
        return to
    what = f"now has the {user.role} role" if change.role else f"is now {_state(user.active)}"
    return redirect(
        ACCOUNTS,
        notice=f"{user.username} {what}; their sessions and API keys have ended.",
    )


def _state(active: bool) -> str:
    return "active" if active else "inactive"


@post("/accounts/{user_id:int}/role", opt=allow(MANAGE_ACCOUNTS), dependencies=_USERS)
async def change_role(
    request: Request[Any, Any, Any],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
    user_id: Id,
) -> Template | Redirect:
    role = _field(await request.form(), "role")
    if role not in ROLES:
        return await _accounts_page(
            request,
            users,
            container,
            status_code=422,
            error=f"Choose a role: {', '.join(ROLES)}.",
        )
    return await _change(request, users, container, user_id, role=Role(role))


@post("/accounts/{user_id:int}/deactivate", opt=allow(MANAGE_ACCOUNTS), dependencies=_USERS)
async def deactivate(
    request: Request[Any, Any, Any],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
    user_id: Id,
) -> Template | Redirect:
    return await _change(request, users, container, user_id, active=False)


@post("/accounts/{user_id:int}/activate", opt=allow(MANAGE_ACCOUNTS), dependencies=_USERS)
async def activate(
    request: Request[Any, Any, Any],
    users: NamedDependency[UserService],
    container: NamedDependency[Container],
    user_id: Id,
) -> Template | Redirect:
    return await _change(request, users, container, user_id, active=True)


# -- API keys --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: int
    name: str
    owner: str
    role: str
    prefix: str
    created: str
    expires: str
    last_used: str
    state: str


def _key_row(listed: ListedKey) -> KeyRow:
    key = listed.key
    return KeyRow(
        id=key.id,
        name=key.name,
        owner=listed.owner,
        role=key.role,
        prefix=key.prefix,
        created=_when(key.created_at),
        expires=_when(key.expires_at, "never"),
        last_used=_when(key.last_used_at, "never"),
        state=listed.state,
    )


def _grantable(principal: Principal) -> list[str]:
    """The roles `principal` may give a key, least powerful first (the form's default)."""
    order = (Role.RECEIVER, Role.VIEWER, Role.EDITOR, Role.ADMIN)
    return [role.value for role in order if may_grant(principal.role, role)]


async def _keys_page(
    request: Request[Any, Any, Any],
    keys: ApiKeyService,
    *,
    offset: int = 0,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """The keys list and the form; a refused form comes back here with `error`."""
    you = _signed_in(request)
    listed, total = await keys.listing(owner_id=owner_filter(you), limit=PAGE_SIZE, offset=offset)
    grantable = _grantable(you)
    context.setdefault("key_role", Role.VIEWER.value if Role.VIEWER in grantable else grantable[0])
    return render(
        request,
        "keys.html",
        status_code=status_code,
        keys=[_key_row(item) for item in listed],
        pager=Pager(offset=offset, total=total, shown=len(listed)),
        everyone=owner_filter(you) is None,
        grantable=grantable,
        max_days=MAX_EXPIRY_DAYS,
        **context,
    )


@get("/keys", opt=allow(OWN_ACCOUNT), dependencies=_KEYS)
async def keys_page(
    request: Request[Any, Any, Any], keys: NamedDependency[ApiKeyService], offset: Offset = 0
) -> Template:
    return await _keys_page(request, keys, offset=offset)


def _expiry(days: str) -> datetime | None:
    """The form's "Expires in days" as an instant; empty means never."""
    if not days:
        return None
    try:
        number = int(days) if days.isascii() else 0
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_EXPIRY_DAYS:
        raise Problem(
            f"expires in days must be a whole number from 1 to {MAX_EXPIRY_DAYS}, "
            "or empty for a key that never expires",
            status=422,
        )
    return datetime.now(UTC) + timedelta(days=number)


@post("/keys", opt=allow(OWN_ACCOUNT), dependencies=_KEYS)
async def create_key(
    request: Request[Any, Any, Any],
    keys: NamedDependency[ApiKeyService],
    container: NamedDependency[Container],
) -> Template:
    """POST /api-keys's work; the secret is shown on this response only, never stored."""
    form = await request.form()
    name, role, days = _field(form, "name"), _field(form, "role"), _field(form, "expires_days")
    try:
        if role not in ROLES:
            raise Problem(
                f"choose a role: {', '.join(_grantable(_signed_in(request)))}", status=422
            )
        key, secret = await issue_key(
            keys, container, _signed_in(request), name, Role(role), _expiry(days)
        )
    except Problem as exc:
        return await _keys_page(
            request,
            keys,
            status_code=exc.status,
            error=sentence(exc.detail),
            key_name=name,
            key_role=role,
            key_days=days,
        )
    return render(
        request,
        "keys_created.html",
        status_code=201,
        headers=_NO_STORE,
        key=_key_row(ListedKey(key=key, owner=_signed_in(request).username, state="active")),
        secret=secret,
    )


@post("/keys/{key_id:int}/revoke", opt=allow(OWN_ACCOUNT), dependencies=_KEYS)
async def revoke(
    request: Request[Any, Any, Any],
    keys: NamedDependency[ApiKeyService],
    container: NamedDependency[Container],
    key_id: Id,
) -> Template | Redirect:
    principals = principals_of(request.app.state)
    try:
        key = await revoke_key(keys, container, principals, _signed_in(request), key_id)
    except Problem as exc:
        return await _keys_page(request, keys, status_code=exc.status, error=sentence(exc.detail))
    return redirect(KEYS, notice=f"API key {key.name} ({key.prefix}…) is revoked.")


routes: list[ControllerRouterHandler] = [
    accounts_page,
    create_account_form,
    change_role,
    deactivate,
    activate,
    keys_page,
    create_key,
    revoke,
]
