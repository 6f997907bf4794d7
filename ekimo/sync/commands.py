"""`ekimo sync [--json]`: one sync run now, in this process, through the same service."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ekimo.console import console, errors, run_in_container

if TYPE_CHECKING:  # imported when the command runs, not for --help
    from ekimo.container import Container
    from ekimo.sync.journal import RunSummary

EXIT_OK = 0
EXIT_INCOMPLETE = 1


def sync_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's summary as JSON, without progress.")
    ] = False,
) -> None:
    """Push new or changed products to the external API now (SYNC_BASE_URL).

    Exit 0 when the run succeeded, had nothing to send or was skipped (another run is going
    on); 1 when some products were not delivered or were rejected (partial, failed).
    """
    from ekimo.sync.service import SyncService
    from ekimo.users import audit

    async def work(container: Container) -> RunSummary:
        from ekimo.shutdown import on_stop_signals

        # Ctrl+C or SIGTERM: the batches in flight finish, the run records why it stopped.
        on_stop_signals(container.shutdown.begin)
        summary = await _run(container, as_json)
        # An operator's run from a shell: no account, so the trail names the command.
        await audit.record(
            container,
            audit.Action.SYNC_TRIGGERED,
            actor_name="ekimo sync (CLI)",
            target=f"sync_run:{summary.id}",
            details={"via": "cli"},
        )
        return summary

    async def _run(container: Container, as_json: bool) -> RunSummary:
        service = SyncService(container)
        if as_json:
            return await service.run("cli")
        with Progress(
            TextColumn("syncing to {task.fields[url]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("sync", total=None, url=container.settings.sync_base_url)

            def update(summary: RunSummary) -> None:
                done = summary.acknowledged + summary.rejected + summary.failed
                progress.update(task, total=summary.pending_at_start, completed=done)

            return await service.run("cli", on_progress=update)

    # Lean: a run needs no queue, only the database and the HTTP client (made on first use).
    summary = run_in_container(work, lean=True)
    if as_json:
        sys.stdout.write(json.dumps(summary.as_dict()) + "\n")
    else:
        _print_summary(summary)
    raise typer.Exit(EXIT_OK if summary.status in ("succeeded", "skipped") else EXIT_INCOMPLETE)


def _print_summary(summary: RunSummary) -> None:
    colour = {"succeeded": "green", "skipped": "yellow"}.get(summary.status, "red")
    table = Table(show_header=False, box=None)
    table.add_row("status", f"[bold {colour}]{summary.status}[/]")
    table.add_row("pending at start", str(summary.pending_at_start))
    table.add_row("sent", str(summary.sent))
    table.add_row("acknowledged", str(summary.acknowledged))
    table.add_row("rejected", str(summary.rejected))
    table.add_row("failed", str(summary.failed))
    table.add_row("retries", str(summary.retries))
    table.add_row("duration", f"{(summary.duration_ms or 0) / 1000:.2f} s")
    console.print(f"sync run {summary.id}")
    console.print(table)
    if summary.error:
        errors.print(f"[bold red]error:[/] {summary.error}", highlight=False)
