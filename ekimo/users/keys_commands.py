"""`ekimo keys create|list|revoke`: API keys without the API (e.g. the key another ekimo syncs
in with). The operator acts for the account named by `--user`: the key's role may not exceed
that account's, as over HTTP.

`create` writes the secret alone on standard output (`KEY=$(ekimo keys create ...)`), and
what it made on standard error.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ekimo.console import console, errors, fail, run_in_container
from ekimo.errors import NotFound, Problem
from ekimo.users.roles import Role

if TYPE_CHECKING:  # imported when the command runs, not for --help
    from ekimo.container import Container
    from ekimo.users.models import ApiKey

EXIT_NOT_FOUND = 1

keys_app = typer.Typer(help="Manage API keys (credentials for machines).", no_args_is_help=True)


def _when(moment: datetime | None, never: str = "never") -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment is not None else never


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. the partner's name.")],
    user: Annotated[str, typer.Option("--user", help="The account that owns the key.")],
    role: Annotated[
        Role,
        typer.Option("--role", case_sensitive=False, help="At most the owner's role."),
    ],
    expires_days: Annotated[
        int | None,
        typer.Option("--expires-days", min=1, help="Stop working after N days (default: never)."),
    ] = None,
) -> None:
    """Create a key and print its secret, this once.

    Exit 1 when the account does not exist, 2 on invalid input (a role above the owner's, an
    inactive owner).
    """
    from ekimo.users import audit
    from ekimo.users.keys import ApiKeyService
    from ekimo.users.service import UserService

    expires_at = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None

    async def work(container: Container) -> tuple[ApiKey, str]:
        async with container.session() as session:
            owner = await UserService(session).find(user)
            if owner is None:
                raise NotFound(f"there is no account {user!r}")
            key, secret = await ApiKeyService(session).create_key(owner.id, name, role, expires_at)
        await audit.record(
            container,
            audit.Action.KEY_CREATED,
            target=f"api_key:{key.id}",
            details={
                "name": key.name,
                "role": key.role,
                "owner_id": key.user_id,
                "expires_at": key.expires_at.isoformat() if key.expires_at else None,
                "via": "cli",
            },
        )
        return key, secret

    try:
        key, secret = run_in_container(work)
    except NotFound as exc:
        raise fail(exc.detail, code=EXIT_NOT_FOUND) from None
    except Problem as exc:
        raise fail(exc.detail) from None
    sys.stdout.write(secret + "\n")
    errors.print(
        f"[green]created[/] API key {key.id} [bold]{escape(key.name)}[/] ({key.role}) of "
        f"{escape(user)}, "
        f"expires {_when(key.expires_at)}; the secret above is shown only this once",
        highlight=False,
    )


@keys_app.command("list")
def list_keys() -> None:
    """Every key: id, name, role, owner, prefix, dates (UTC). Never a secret."""
    from ekimo.users.keys import ApiKeyService

    async def work(container: Container) -> list[tuple[ApiKey, str]]:
        async with container.session() as session:
            return await ApiKeyService(session).with_owners()

    rows = run_in_container(work)
    if not rows:
        console.print("no API keys")
        return
    table = [("id", "name", "role", "owner", "prefix", "created", "expires", "last used")]
    table += [
        (
            str(key.id),
            key.name,
            key.role,
            owner,
            key.prefix,
            _when(key.created_at),
            _when(key.expires_at),
            _when(key.last_used_at),
        )
        for key, owner in rows
    ]
    # Padded plain text, not a Rich table: piped output is 80 columns, where a table wraps.
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        sys.stdout.write("\n")


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id (see `ekimo keys list`).")],
) -> None:
    """Revoke (delete) a key: every ekimo process refuses it within seconds.

    Exit 1 when there is no such key.
    """
    from ekimo.users import audit
    from ekimo.users.keys import ApiKeyService

    async def work(container: Container) -> ApiKey:
        async with container.session() as session:
            key = await ApiKeyService(session).revoke(key_id, owner_id=None)
        await audit.record(
            container,
            audit.Action.KEY_REVOKED,
            target=f"api_key:{key.id}",
            details={"name": key.name, "role": key.role, "owner_id": key.user_id, "via": "cli"},
        )
        return key

    try:
        key = run_in_container(work)
    except NotFound as exc:
        raise fail(exc.detail, code=EXIT_NOT_FOUND) from None
    console.print(
        f"[green]revoked[/] API key {key.id} [bold]{escape(key.name)}[/]", highlight=False
    )
