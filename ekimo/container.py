"""The service container: one lifecycle for settings, database, queue and HTTP client.

The Litestar app and the Typer CLI both open a `Container` and take everything from it. The
libraries behind each resource are imported when it is first made: a command that needs only
database connections (`ekimo import`) starts without SQLAlchemy, SAQ, httpx or Redis.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import asyncpg  # pyright: ignore[reportMissingTypeStubs]

from ekimo import db, embedded
from ekimo.settings import Settings
from ekimo.shutdown import Shutdown

if TYPE_CHECKING:
    import httpx
    from redis.asyncio import Redis
    from saq import Queue
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

logger = logging.getLogger(__name__)


class Container:
    """Owns the long-lived resources. Use `async with Container(settings) as container:`.

    `lean=True`: start without the queue and the HTTP client (the queue cannot be used); the
    engine is made on first use, and `connection()` opens plain asyncpg connections until then.
    """

    def __init__(self, settings: Settings, *, lean: bool = False) -> None:
        self._configured = settings
        self._lean = lean
        self._settings: Settings | None = None
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._read_sessions: async_sessionmaker[AsyncSession] | None = None
        self._queue: Queue | None = None
        self._http: httpx.AsyncClient | None = None
        self._redis: Redis | None = None
        # The process's graceful stop, begun by the server's or the worker's signal handling.
        self.shutdown = Shutdown(settings.shutdown_grace_seconds)

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        # One per process, shared: Litestar copies a router's middleware arguments.
        return self

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        settings = self._configured
        if settings.database_url is None:
            url = await asyncio.to_thread(embedded.start_server, settings.state_dir)
            secret = settings.secret_key or embedded.secret_key_for(settings.state_dir)
            from ekimo.logs import mask_also  # the embedded mode only: logs loads Litestar

            mask_also(secret)
            settings = settings.with_values(database_url=url, secret_key=secret)
            logger.info("embedded PostgreSQL running, data in %s", settings.state_dir / "pgdata")
            await db.upgrade_async(url)
        assert settings.database_url is not None
        self._settings = settings
        if self._lean:
            return
        self._make_engine(settings.database_url)
        self._queue = self._create_queue(settings)
        await self._queue.connect()
        import httpx

        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))
        # What exists now (modules, the app, the pools) lives as long as the process: out of the
        # collector's way, which would walk it all every few seconds under load (a pause each).
        gc.freeze()

    def _make_engine(self, url: str) -> AsyncEngine:
        from sqlalchemy.ext.asyncio import async_sessionmaker

        engine = self._engine = db.create_engine(url)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Reads of one statement need no transaction: no BEGIN and ROLLBACK round trips.
        self._read_sessions = async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        return engine

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        if self._http is not None:
            await self._http.aclose()
        if self._queue is not None:
            await self._queue.disconnect()
        if self._engine is not None:
            await self._engine.dispose()
        self._http = self._queue = self._engine = self._sessions = self._redis = None
        self._read_sessions = None
        self._settings = None

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @staticmethod
    def _create_queue(settings: Settings) -> Queue:
        from saq import Queue

        if settings.redis_url is not None:
            return Queue.from_url(settings.redis_url, name=settings.queue_name)
        assert settings.database_url is not None
        # SAQ's PostgreSQL queue runs on psycopg with a small pool of its own.
        return Queue.from_url(
            db.libpq_url(settings.database_url), name=settings.queue_name, min_size=1, max_size=4
        )

    # -- resources -------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._settings is not None

    @property
    def configured(self) -> Settings:
        """The settings as given, usable before `start` (the app is assembled before it runs)."""
        return self._configured

    @property
    def redis(self) -> Redis | None:
        """The Redis client of the stores (the login rate limit), when REDIS_URL is set. Made on
        first use, before `start` if need be: it connects lazily; `stop` closes it."""
        if self._redis is None and self._configured.redis_url is not None:
            from redis.asyncio import Redis

            # redis-py leaves the keyword options of from_url untyped.
            self._redis = Redis.from_url(self._configured.redis_url)  # pyright: ignore[reportUnknownMemberType]
        return self._redis

    @property
    def settings(self) -> Settings:
        """The effective settings: in embedded mode, with the server's URL and the key."""
        if self._settings is None:
            raise RuntimeError("container not started")
        return self._settings

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            url = self.settings.database_url
            assert url is not None
            return self._make_engine(url)
        return self._engine

    @property
    def queue(self) -> Queue:
        if self._queue is None:
            raise RuntimeError("container not started (or started lean, without the queue)")
        return self._queue

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            if self._settings is None:
                raise RuntimeError("container not started")
            import httpx

            self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))
        return self._http

    @asynccontextmanager
    async def session(self) -> AsyncGenerator[AsyncSession]:
        """A database session; the caller commits, anything uncommitted is rolled back."""
        self.engine  # noqa: B018 (made on first use)
        assert self._sessions is not None
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncGenerator[AsyncSession]:
        """A session whose statements each run on their own, outside a transaction: for
        requests that only read (each statement sees the latest committed data)."""
        self.engine  # noqa: B018 (made on first use)
        assert self._read_sessions is not None
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def connection(self, *, discard_on_error: bool = False) -> AsyncGenerator[Any]:
        """An asyncpg connection: from the engine's pool once there is an engine, else a plain
        one of its own (a lean container's). `discard_on_error`: an error may leave it
        mid-statement, so it is closed instead of going back to the pool."""
        if self._engine is None:
            url = self.settings.database_url
            assert url is not None
            conn = await _plain_connection(db.libpq_url(url))
            try:
                yield conn
            finally:
                await conn.close()
            return
        # Straight from the pool, without a SQLAlchemy `Connection` around it: its events and
        # bookkeeping cost more than a one-row read. Given back, it is rolled back (a no-op when
        # no SQLAlchemy transaction began) and checked at its next checkout (`db._refuse_closed`).
        raw = await self._engine.raw_connection()
        try:
            yield raw.driver_connection
        except BaseException:
            if discard_on_error:
                from sqlalchemy.util import greenlet_spawn

                await greenlet_spawn(raw.invalidate)  # closes it and gives its place back
            raise
        finally:
            if raw.is_valid:
                raw.close()


async def _plain_connection(url: str) -> Any:
    # asyncpg ships no type information for `connect`.
    connect: Any = asyncpg.connect  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    connection: Any = await connect(url)
    db.resume_copy_when_lost(connection)
    return connection
