"""`ekimo import FILE`: the same import service as `PUT /products`, from a terminal."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Literal

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ekimo.console import console, errors, fail, run_in_container
from ekimo.imports.errors import FileProblem, ImportFailed, ImportNotQueued
from ekimo.imports.schemas import ImportOptions, ImportReport

# The import service (and the database layer under it) is imported when a file is imported, not
# for `--help` or a usage error: it takes seconds.
if TYPE_CHECKING:
    from ekimo.container import Container

EXIT_REJECTED = 1
EXIT_UNREADABLE = 2
ERRORS_SHOWN = 20


def import_command(
    file: Annotated[str, typer.Argument(help="A .csv or .xlsx file; - reads CSV from stdin.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and count; write nothing.")
    ] = False,
    on_error: Annotated[
        str,
        typer.Option(
            "--on-error",
            help="reject: any invalid row rejects the file; skip: import the valid rows.",
        ),
    ] = "reject",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    run_async: Annotated[
        bool,
        typer.Option(
            "--async",
            help="Store the file in the database and let the worker import it; prints the "
            "import id (follow it with GET /imports/ID).",
        ),
    ] = False,
) -> None:
    """Import products from a CSV or XLSX file.

    Exit status: 0 applied or validated, 1 rejected, 2 unreadable file or bad usage.
    """
    if on_error not in ("reject", "skip"):
        raise fail(f"--on-error must be reject or skip, not {on_error!r}")

    mode: Literal["reject", "skip"] = "skip" if on_error == "skip" else "reject"
    options = ImportOptions(dry_run=dry_run, on_error=mode)
    with ExitStack() as stack:
        stream: IO[bytes]
        if file == "-":
            filename, stream = "stdin.csv", sys.stdin.buffer
        else:
            path = Path(file)
            if not path.is_file():
                raise fail(f"{file}: no such file")
            filename = path.name
            try:
                stream = stack.enter_context(path.open("rb"))
            except OSError as exc:
                raise fail(f"{file}: {exc.strerror}") from None
        if run_async:
            _queue(stream, filename, options, as_json)
            return
        outcome = run_in_container(
            lambda c: _run(c, stream, filename, options, as_json),
            lean=True,  # the import works through asyncpg: no ORM, queue or HTTP client
        )
    if isinstance(outcome, FileProblem | ImportFailed):
        if as_json and isinstance(outcome, ImportFailed) and outcome.report is not None:
            print(json.dumps(outcome.report.to_dict() | {"detail": outcome.message}))
        raise fail(f"{filename}: {outcome.message}", code=EXIT_UNREADABLE)
    if as_json:
        print(json.dumps(outcome.to_dict()))
    else:
        _print_report(outcome)
    if outcome.status == "rejected":
        raise typer.Exit(EXIT_REJECTED)


def _queue(stream: IO[bytes], filename: str, options: ImportOptions, as_json: bool) -> None:
    from ekimo.imports.jobs import queue_import

    async def work(container: Container) -> int | FileProblem | ImportNotQueued:
        try:
            return await queue_import(container, stream, filename, options)
        except (FileProblem, ImportNotQueued) as problem:
            return problem

    outcome = run_in_container(work)
    if isinstance(outcome, FileProblem):
        raise fail(f"{filename}: {outcome.message}", code=EXIT_UNREADABLE)
    if isinstance(outcome, ImportNotQueued):
        raise fail(f"{filename}: {outcome}", code=1)
    location = f"/imports/{outcome}"
    if as_json:
        print(json.dumps({"import_id": outcome, "status": "queued", "location": location}))
    else:
        console.print(
            f"queued as import [bold]{outcome}[/]: a worker (`ekimo worker` or `ekimo serve`) "
            f"imports it; follow it with GET {location}",
            highlight=False,
        )


async def _run(
    container: Container, stream: IO[bytes], filename: str, options: ImportOptions, as_json: bool
) -> ImportReport | ImportFailed | FileProblem:
    from ekimo.imports.service import ImportService

    show_progress = console.is_terminal and not as_json
    bar = Progress(
        TextColumn("importing"),
        BarColumn(bar_width=None),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not show_progress,
    )
    task = bar.add_task("rows", total=None)
    with bar:
        try:
            return await ImportService(container).run(
                stream,
                filename,
                options,
                progress=lambda done: bar.update(task, completed=done),
            )
        except (ImportFailed, FileProblem) as exc:
            return exc


def _print_report(report: ImportReport) -> None:
    table = Table(title=f"import of {report.filename}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("status", report.status + (" (dry run)" if report.dry_run else ""))
    for label, value in (
        ("rows", report.rows),
        ("created", report.created),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("rejected", report.rejected),
    ):
        table.add_row(label, f"{value:,}")
    table.add_row("time", f"{report.duration_ms / 1000:.1f} s")
    if report.import_id is not None:
        table.add_row("import id", str(report.import_id))
    console.print(table)
    for warning in report.warnings:
        errors.print(f"[yellow]warning:[/] {warning}", highlight=False)
    for error in report.errors[:ERRORS_SHOWN]:
        where = f"row {error['row']}" if error["row"] is not None else "file"
        column = f" {error['column']}" if error["column"] else ""
        value = f" ({error['value']!r})" if error["value"] not in (None, "") else ""
        errors.print(f"{where}{column}{value}: {error['message']}", highlight=False, markup=False)
    if report.errors_total > ERRORS_SHOWN:
        errors.print(f"…and {report.errors_total - ERRORS_SHOWN:,} more", highlight=False)
    if report.status == "rejected":
        errors.print(
            "nothing was written: fix these rows, or pass --on-error skip to import the valid ones",
            highlight=False,
        )
