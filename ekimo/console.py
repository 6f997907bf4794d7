"""What every CLI command shares: settings errors as exit 2, a started container, Rich."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

from ekimo.embedded import EmbeddedUnavailableError
from ekimo.errors import Problem
from ekimo.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:  # imported when a command starts one: the database layer takes seconds
    from ekimo.container import Container

console = Console()
errors = Console(stderr=True)

EXIT_USAGE = 2
# A dependency (the database) could not be reached: nothing to fix in the command.
EXIT_UNAVAILABLE = 1

T = TypeVar("T")


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    # One line whatever its length: Rich would wrap at 80 columns when not on a terminal.
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(f"configuration: {exc}") from None


def run_in_container(work: Callable[[Container], Awaitable[T]], *, lean: bool = False) -> T:
    """Start the container, run `work` with it, stop it; configuration errors exit 2.
    `lean`: for work that needs only database connections (see `Container`)."""
    from ekimo.container import Container

    settings = settings_or_exit()

    async def main() -> T:
        async with Container(settings, lean=lean) as container:
            return await work(container)

    try:
        return asyncio.run(main())
    except EmbeddedUnavailableError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:
        from ekimo.db import UNMIGRATED, is_unavailable, is_unmigrated

        if is_unmigrated(exc):
            raise fail(UNMIGRATED, code=EXIT_UNAVAILABLE) from None
        if not is_unavailable(exc):
            raise
        # An outage is not a bug: one line saying what happened, no traceback.
        reason = exc.detail if isinstance(exc, Problem) else "the database is unavailable"
        raise fail(f"{reason} (try again when it is back)", code=EXIT_UNAVAILABLE) from None
