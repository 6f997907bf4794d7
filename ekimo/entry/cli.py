"""The `ekimo` command: serve, worker, db, import, sync, users, keys."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer

from ekimo.console import console, fail, run_in_container, settings_or_exit
from ekimo.imports.commands import import_command
from ekimo.sync.commands import sync_command
from ekimo.users.commands import users_app
from ekimo.users.keys_commands import keys_app

# The web stack and the database layer are imported by the commands that use them:
# together they take seconds, which `ekimo --help` or a usage error should not.
if TYPE_CHECKING:
    from ekimo.container import Container
    from ekimo.settings import Settings

app = typer.Typer(
    name="ekimo",
    help="Product catalog: import CSV/XLSX, sync to an external API, serve the HTTP API.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.command("import")(import_command)
app.command("sync")(sync_command)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Also run the SAQ worker (once).")
    ] = True,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            envvar="WEB_CONCURRENCY",
            min=1,
            max=64,
            help="API processes on the port (use the machine's cores); the worker and the "
            "scheduler still run once.",
        ),
    ] = 1,
) -> None:
    """Run the HTTP API (and, unless --no-worker, the background worker)."""
    from ekimo import embedded
    from ekimo.entry import server
    from ekimo.logs import configure_logging

    settings = settings_or_exit()
    configure_logging(settings)
    embedded.stop_on_signals()  # SIGHUP and SIGQUIT end the process without `atexit`
    _announce(settings, f"ekimo on http://{host}:{port} — API docs at http://{host}:{port}/docs")
    if workers > 1:
        server.run_many(settings, workers, host, port, run_worker=worker)
        return
    from ekimo.container import Container
    from ekimo.entry.app import create_app

    litestar_app = create_app(Container(settings), run_worker=worker, served=True)
    server.run_one(litestar_app, settings, host, port)


@app.command("worker")
def run_worker(
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule/--no-schedule",
            help="Also schedule the periodic jobs (sync, sweep); --no-schedule only runs "
            "queued jobs, for extra workers.",
        ),
    ] = True,
) -> None:
    """Run only the background worker (scheduled sync, asynchronous imports)."""
    from ekimo import embedded
    from ekimo.entry.worker import create_worker
    from ekimo.logs import configure_logging
    from ekimo.shutdown import on_stop_signals

    configure_logging(settings_or_exit())
    embedded.stop_on_signals()  # SIGHUP, SIGQUIT (and SIGTERM during start-up): no atexit

    async def work(container: Container) -> None:
        saq_worker = create_worker(container, schedule=schedule, handle_signals=False)

        def stop() -> None:
            container.shutdown.begin()
            saq_worker.event.set()  # `start` returns and stops the worker gracefully

        on_stop_signals(stop)
        _announce(container.settings, "ekimo worker started; Ctrl+C stops it")
        await saq_worker.start()
        _announce(container.settings, "ekimo worker stopped")

    run_in_container(work)


def _announce(settings: Settings, message: str) -> None:
    """A long-running command's news: on the terminal, or a log line when the logs are JSON
    (their output must stay one JSON object per line)."""
    if settings.log_format == "json":
        logging.getLogger("ekimo").info(message)
    else:
        console.print(message, highlight=False)


def _database_url() -> str:
    settings = settings_or_exit()
    if settings.database_url is None:
        # Embedded mode: start (or join) the private server to migrate it.
        async def url(container: Container) -> str:
            assert container.settings.database_url is not None
            return container.settings.database_url

        return run_in_container(url)
    return settings.database_url


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from ekimo import db

    db.upgrade(_database_url(), revision)
    console.print(f"database upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target, e.g. -1 or base.")]) -> None:
    """Revert migrations down to REVISION."""
    from ekimo import db

    db.downgrade(_database_url(), revision)
    console.print(f"database downgraded to {revision}")


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the migration does.")],
    autogenerate: Annotated[
        bool, typer.Option(help="Compare the models with the database.")
    ] = True,
) -> None:
    """Create a new migration file in alembic/versions."""
    from ekimo import db

    db.revision(_database_url(), message, autogenerate)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        raise fail("interrupted", code=130) from None


if __name__ == "__main__":
    main()
