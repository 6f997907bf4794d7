"""`ekimo users create USERNAME`: an account without the API (e.g. the sync account)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ekimo.console import console, fail, run_in_container
from ekimo.users.rules import InvalidInputError, UsernameTakenError, check_password, check_username

if TYPE_CHECKING:  # imported when the command runs, not for --help
    from ekimo.container import Container
    from ekimo.users.models import User

EXIT_EXISTS = 1

users_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise fail("--password-stdin: no password on standard input")
        return line.rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="3 to 64 letters, digits and ._-@")],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from the first line of standard input."
        ),
    ] = False,
) -> None:
    """Create an account. Exit 0 when created, 1 when the name exists, 2 on invalid input."""
    try:
        check_username(username)
        password = _read_password(password_stdin)
        check_password(password)
    except InvalidInputError as exc:
        raise fail(exc.message) from None

    from ekimo.users.service import UserService

    async def work(container: Container) -> User:
        async with container.session() as session:
            return await UserService(session).register(username, password)

    try:
        user = run_in_container(work)
    except UsernameTakenError as exc:
        raise fail(str(exc), code=EXIT_EXISTS) from None
    except InvalidInputError as exc:
        raise fail(exc.message) from None
    console.print(
        f"[green]created[/] user [bold]{user.username}[/] (id {user.id})", highlight=False
    )
