"""What every CLI command shares: settings errors as exit 2, a started container, Rich."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

from ekimo.embedded import EmbeddedUnavailableError
from ekimo.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:  # imported when a command starts one: the database layer takes seconds
    from ekimo.container import Container

console = Console()
errors = Console(stderr=True)

EXIT_USAGE = 2

T = TypeVar("T")


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(f"configuration: {exc}") from None


def run_in_container(work: Callable[[Container], Awaitable[T]]) -> T:
    """Start the container, run `work` with it, stop it; configuration errors exit 2."""
    from ekimo.container import Container

    settings = settings_or_exit()

    async def main() -> T:
        async with Container(settings) as container:
            return await work(container)

    try:
        return asyncio.run(main())
    except EmbeddedUnavailableError as exc:
        raise fail(str(exc)) from None
