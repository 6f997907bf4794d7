"""Database plumbing: URL dialects, the engine, outages, migrations.

SQLAlchemy, Alembic and psycopg are imported by the functions that use them: a CLI command
that works through asyncpg alone (`ekimo import`) starts without them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import asyncpg  # pyright: ignore[reportMissingTypeStubs]

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import AsyncEngine

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def asyncpg_url(url: str) -> str:
    """The SQLAlchemy URL for asyncpg, whatever PostgreSQL scheme the user gave."""
    _, rest = url.split("://", 1)
    return f"postgresql+asyncpg://{rest}"


def libpq_url(url: str) -> str:
    """The plain libpq URL (psycopg, psql) for the same database."""
    _, rest = url.split("://", 1)
    return f"postgresql://{rest}"


def create_engine(url: str) -> AsyncEngine:
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(
        asyncpg_url(url),
        # A fixed pool: connections made past the pool's size are closed when given back, so
        # under load every request would open one (requests wait for a pooled one instead).
        pool_size=20,
        max_overflow=0,
        # No pre-ping (a round trip per checkout): `_refuse_closed` finds dead connections.
        pool_pre_ping=False,
        # Sessions commit explicitly; a connection returned to the pool is rolled back.
        pool_reset_on_return="rollback",
    )
    event.listen(engine.sync_engine, "connect", _end_copy_when_lost)
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_connection: Any, _record: object, _proxy: object) -> None:
    """A pooled connection the server has closed (a restart, a failover, an idle timeout) is
    known as closed as soon as the event loop reads the server's goodbye: replaced at checkout,
    without a round trip, so the first request after a restart is served."""
    if dbapi_connection.driver_connection.is_closed():
        from sqlalchemy.exc import DisconnectionError

        raise DisconnectionError("the server closed this pooled connection")


def _end_copy_when_lost(dbapi_connection: Any, _: object) -> None:
    resume_copy_when_lost(dbapi_connection.driver_connection)


def resume_copy_when_lost(connection: Any) -> None:
    """A COPY waiting for the socket to drain when the server drops the connection would wait
    for ever (asyncpg 0.32 never resumes writing on a lost connection): resumed here, it fails
    at once with the connection's error (the import's 503, a failed job). For every asyncpg
    connection that may COPY: the engine's (on connect) and plain ones."""
    writing_allowed = getattr(getattr(connection, "_protocol", None), "writing_allowed", None)
    if isinstance(writing_allowed, asyncio.Event):
        event_set = writing_allowed

        def resume(_: object) -> None:
            event_set.set()

        connection.add_termination_listener(resume)


# What asyncpg raises when the server is gone, restarting or refusing connections.
_DRIVER_UNAVAILABLE = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown
    asyncpg.exceptions.InterfaceError,  # "connection is closed"
    asyncpg.exceptions.TooManyConnectionsError,
    ConnectionError,  # refused, reset, aborted: only sockets raise these
    TimeoutError,
)


def _unavailable_kinds() -> tuple[type[BaseException], ...]:
    """The driver errors of an outage, with psycopg's (SAQ's PostgreSQL queue) once loaded: a
    library that was never imported raised nothing."""
    psycopg = sys.modules.get("psycopg")
    psycopg_pool = sys.modules.get("psycopg_pool")
    return (
        *_DRIVER_UNAVAILABLE,
        *((psycopg.OperationalError,) if psycopg else ()),
        *((psycopg_pool.PoolTimeout,) if psycopg_pool else ()),
    )


def _closed_transport(exc: BaseException) -> bool:
    """uvloop's error for a write on a transport already closed, raised inside asyncpg (a COPY
    still sending when the server dropped the connection): a RuntimeError, not a socket error."""
    if not isinstance(exc, RuntimeError) or "the handler is closed" not in str(exc):
        return False
    trace = exc.__traceback__
    while trace is not None:
        if "asyncpg" in trace.tb_frame.f_code.co_filename:
            return True
        trace = trace.tb_next
    return False


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) means the database cannot be reached now, as opposed
    to a statement it refused: the first is a 503 to retry later, the second a bug or a 4xx."""
    kinds = _unavailable_kinds()
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")

    def outage(error: BaseException) -> bool:
        if isinstance(error, kinds) or _closed_transport(error):
            return True
        if sqlalchemy_errors is not None and isinstance(error, sqlalchemy_errors.DBAPIError):
            wrapped = cast("DBAPIError", error)
            # Any OSError the driver raised while connecting (e.g. every address refused).
            return wrapped.connection_invalidated or isinstance(wrapped.orig, OSError)
        # The database is closed to new connections (ALLOW_CONNECTIONS false).
        return isinstance(error, asyncpg.exceptions.ObjectNotInPrerequisiteStateError) and (
            "not currently accepting connections" in str(error)
        )

    return _caused_by(exc, outage)


# What a statement meets on a schema older than the code: a table or a column it does not have.
_SCHEMA_BEHIND = (asyncpg.exceptions.UndefinedTableError, asyncpg.exceptions.UndefinedColumnError)
UNMIGRATED = (
    "the database is not migrated to this version of ekimo; an operator must run `ekimo db upgrade`"
)


def is_unmigrated(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a statement that met a schema older than this
    code's migrations: not the request's fault, and nothing a retry alone will fix."""
    return _caused_by(exc, lambda error: isinstance(error, _SCHEMA_BEHIND))


def _caused_by(exc: BaseException, test: Callable[[BaseException], bool]) -> bool:
    """Whether `exc` or an error behind it passes `test`: its causes, the driver error
    SQLAlchemy wrapped, and each error of a group (concurrent work that failed together)."""
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if test(current):
            return True
        if isinstance(current, BaseExceptionGroup):
            group = cast("BaseExceptionGroup[BaseException]", current)
            return any(_caused_by(inner, test) for inner in group.exceptions)
        if sqlalchemy_errors is not None and isinstance(current, sqlalchemy_errors.DBAPIError):
            orig = cast("DBAPIError", current).orig
            if isinstance(orig, BaseException):
                current = orig
                continue
        current = current.__cause__ or current.__context__
    return False


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = asyncpg_url(url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def revision(url: str, message: str, autogenerate: bool = True) -> None:
    from alembic import command

    command.revision(alembic_config(url), message=message, autogenerate=autogenerate)


async def upgrade_async(url: str, revision: str = "head") -> None:
    # Alembic's async env runs its own event loop, so it must not share ours.
    await asyncio.to_thread(upgrade, url, revision)
