"""`ekimo users create|set-role|deactivate`: accounts without the API, e.g. the first admin of a
deployment whose registration is closed, or the account another ekimo syncs in with.

The same `UserService` as over HTTP, so the same rules hold: the first account of a database is
an admin, the last active admin stays one, a change ends the account's tokens and API keys (in
every server process within a few seconds). Exit status: 0 done (or nothing to change), 1 no
such account or a conflict (the name is taken, the last admin), 2 invalid input.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ekimo.console import console, fail, run_in_container
from ekimo.errors import Conflict, NotFound
from ekimo.users.roles import ROLES, Role
from ekimo.users.rules import InvalidInputError, UsernameTakenError, check_password, check_username

if TYPE_CHECKING:  # imported when the command runs, not for --help
    from ekimo.container import Container
    from ekimo.users.models import User
    from ekimo.users.service import AccountChange

EXIT_EXISTS = 1
EXIT_NOT_FOUND = 1
EXIT_CONFLICT = 1

_ROLE_CHOICES = ", ".join(ROLES)
# Marks the audit trail's events of these commands: they have no account acting.
_VIA_CLI = {"via": "cli"}

users_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise fail("--password-stdin: no password on standard input")
        return line.rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _role(value: str) -> Role:
    # A plain string rather than Typer's choice type: a wrong role is one line, like every
    # other error of these commands, not a usage panel.
    try:
        return Role(value.lower())
    except ValueError:
        raise fail(f"unknown role {escape(repr(value))}; choose one of {_ROLE_CHOICES}") from None


@users_app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="3 to 64 letters, digits and ._-@")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help=f"One of {_ROLE_CHOICES}. The first account of a database is an admin "
            "whatever this says.",
        ),
    ] = Role.EDITOR.value,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from the first line of standard input."
        ),
    ] = False,
) -> None:
    """Create an account (the password is asked twice unless --password-stdin).

    Exit 0 when created, 1 when the name exists, 2 on invalid input.
    """
    chosen = _role(role)
    try:
        check_username(username)
        password = _read_password(password_stdin)
        check_password(password)
    except InvalidInputError as exc:
        raise fail(exc.message) from None

    from ekimo.users import audit
    from ekimo.users.service import UserService

    async def work(container: Container) -> User:
        async with container.session() as session:
            user = await UserService(session).register(username, password, chosen)
        await audit.record(
            container,
            audit.Action.USER_CREATED,
            target=f"user:{user.id}",
            details={"username": user.username, "role": user.role, **_VIA_CLI},
        )
        return user

    try:
        user = run_in_container(work)
    except UsernameTakenError as exc:
        raise fail(escape(str(exc)), code=EXIT_EXISTS) from None
    except InvalidInputError as exc:
        raise fail(exc.message) from None
    note = ""
    if user.role != chosen:
        note = " (the first account of a database is always an admin)"
    console.print(
        f"[green]created[/] user [bold]{user.username}[/] (id {user.id}, role {user.role}){note}",
        highlight=False,
        soft_wrap=True,
    )


def _change(username: str, role: Role | None = None, active: bool | None = None) -> AccountChange:
    """Apply a change to the account named `username`, record it, and exit 1 on a missing
    account or the last-admin conflict."""
    from ekimo.users import audit
    from ekimo.users.service import UserService

    async def work(container: Container) -> AccountChange:
        async with container.session() as session:
            service = UserService(session)
            user = await service.named(username)
            change = await service.change_account(user.id, role=role, active=active)
        target = f"user:{change.user.id}"
        name = {"username": change.user.username}
        if change.role is not None:
            before, after = change.role
            await audit.record(
                container,
                audit.Action.ROLE_CHANGED,
                target=target,
                details={**name, "from": before, "to": after, **_VIA_CLI},
            )
        if change.active is not None:
            was, now = change.active
            await audit.record(
                container,
                audit.Action.ACTIVE_CHANGED,
                target=target,
                details={**name, "from": was, "to": now, **_VIA_CLI},
            )
        return change

    try:
        return run_in_container(work)
    except NotFound as exc:
        raise fail(escape(exc.detail), code=EXIT_NOT_FOUND) from None
    except Conflict as exc:
        raise fail(escape(exc.detail), code=EXIT_CONFLICT) from None


_ENDED = "its tokens and API keys no longer work"


@users_app.command("set-role")
def set_role(
    username: Annotated[str, typer.Argument(help="The account's name (ignoring case).")],
    role: Annotated[str, typer.Argument(help=f"One of {_ROLE_CHOICES}.")],
) -> None:
    """Give an account another role; its tokens and API keys stop working.

    Exit 0 when done (or it has the role already), 1 when there is no such account or it is
    the last active admin, 2 on an unknown role.
    """
    chosen = _role(role)
    change = _change(username, role=chosen)
    user = change.user
    if change.role is None:
        console.print(
            f"{user.username} already has the role {user.role}", highlight=False, soft_wrap=True
        )
        return
    before, after = change.role
    console.print(
        f"[green]changed[/] [bold]{user.username}[/]: role {before} → {after}; {_ENDED}",
        highlight=False,
        soft_wrap=True,
    )


@users_app.command("deactivate")
def deactivate(
    username: Annotated[str, typer.Argument(help="The account's name (ignoring case).")],
) -> None:
    """Deactivate an account: it can no longer log in, its tokens and API keys stop working.

    Exit 0 when done (or it was inactive already), 1 when there is no such account or it is the
    last active admin.
    """
    change = _change(username, active=False)
    user = change.user
    if change.active is None:
        console.print(f"{user.username} is inactive already", highlight=False, soft_wrap=True)
        return
    console.print(
        f"[green]deactivated[/] [bold]{user.username}[/]; {_ENDED}", highlight=False, soft_wrap=True
    )
