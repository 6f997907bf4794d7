"""The service container: one lifecycle for settings, database, queue and HTTP client.

The Litestar app and the Typer CLI both open a `Container` and take everything from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import httpx
from redis.asyncio import Redis
from saq import Queue, Worker
from saq.types import Context
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ekimo import db, embedded
from ekimo.settings import Settings
from ekimo.shutdown import Shutdown

logger = logging.getLogger(__name__)


class Container:
    """Owns the long-lived resources. Use `async with Container(settings) as container:`."""

    def __init__(self, settings: Settings) -> None:
        self._configured = settings
        self._settings: Settings | None = None
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._read_sessions: async_sessionmaker[AsyncSession] | None = None
        self._queue: Queue | None = None
        self._http: httpx.AsyncClient | None = None
        self._redis: Redis | None = None
        # The process's graceful stop, begun by the server's or the worker's signal handling.
        self.shutdown = Shutdown(settings.shutdown_grace_seconds)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        settings = self._configured
        if settings.database_url is None:
            url = await asyncio.to_thread(embedded.start_server, settings.state_dir)
            secret = settings.secret_key or embedded.secret_key_for(settings.state_dir)
            settings = settings.with_values(database_url=url, secret_key=secret)
            logger.info("embedded PostgreSQL running, data in %s", settings.state_dir / "pgdata")
            await db.upgrade_async(url)
        assert settings.database_url is not None
        self._settings = settings
        self._engine = db.create_engine(settings.database_url)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        # Reads of one statement need no transaction: no BEGIN and ROLLBACK round trips.
        self._read_sessions = async_sessionmaker(
            self._engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        self._queue = self._create_queue(settings)
        await self._queue.connect()
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))

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
        return self._settings is not None and self._engine is not None

    @property
    def configured(self) -> Settings:
        """The settings as given, usable before `start` (the app is assembled before it runs)."""
        return self._configured

    @property
    def redis(self) -> Redis | None:
        """The Redis client of the stores (the login rate limit), when REDIS_URL is set. Made on
        first use, before `start` if need be: it connects lazily; `stop` closes it."""
        if self._redis is None and self._configured.redis_url is not None:
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
            raise RuntimeError("container not started")
        return self._engine

    @property
    def queue(self) -> Queue:
        if self._queue is None:
            raise RuntimeError("container not started")
        return self._queue

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("container not started")
        return self._http

    @asynccontextmanager
    async def session(self) -> AsyncGenerator[AsyncSession]:
        """A database session; the caller commits, anything uncommitted is rolled back."""
        if self._sessions is None:
            raise RuntimeError("container not started")
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncGenerator[AsyncSession]:
        """A session whose statements each run on their own, outside a transaction: for
        requests that only read (each statement sees the latest committed data)."""
        if self._read_sessions is None:
            raise RuntimeError("container not started")
        async with self._read_sessions() as session:
            yield session


# After their jobs finish, SAQ marks them complete: a short step not to be cancelled midway.
JOB_BOOKKEEPING_SECONDS = 5.0


class ContainerWorker(Worker[Any]):
    """A SAQ worker that carries the container its jobs use (see `container_of`), and stops
    gracefully: no new job is taken, running jobs get the container's shutdown grace, then
    SAQ cancels what is left and puts those jobs back on the queue."""

    def __init__(self, container: Container, **options: Any) -> None:
        # `stop` waits for the jobs itself and cancels what is left before SAQ's own stop, whose
        # grace then only sees finished tasks (it would wait for its idle loops, and warn).
        super().__init__(container.queue, shutdown_grace_period_s=1, **options)
        self.container = container

    async def stop(self) -> None:
        shutdown = self.container.shutdown
        self.event.set()  # SAQ takes no new job once its event is set
        jobs = dict(self.job_task_contexts)
        if jobs:
            logger.info("waiting up to %.0f s for %d job(s)", shutdown.remaining(), len(jobs))
            await asyncio.wait([c["task"] for c in jobs.values()], timeout=shutdown.remaining())
            deadline = time.monotonic() + JOB_BOOKKEEPING_SECONDS
            finished = [job for job, c in jobs.items() if c["task"].done()]
            while any(job in self.job_task_contexts for job in finished):
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.05)
        # Jobs still running are cancelled: SAQ puts them back on the queue.
        leftover = list(self.tasks)
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=self._cancellation_hard_deadline_s)
        await super().stop()

    @property
    def stopping(self) -> bool:
        return self.event.is_set()


def worker_stopping(ctx: Context) -> bool:
    """True when the job's worker is stopping: a job cancelled now goes back on the queue."""
    worker = ctx["worker"]
    return isinstance(worker, ContainerWorker) and worker.stopping


def container_of(ctx: Context) -> Container:
    """The container of the worker running a job: SAQ hands a job only its context."""
    worker = ctx["worker"]
    if not isinstance(worker, ContainerWorker):
        raise TypeError("an ekimo job runs on a ContainerWorker")
    return worker.container
