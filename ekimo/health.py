"""GET /health: is the database reachable and migrated, is the queue reachable. Open to everyone.

`?verbose=true` adds the details an operator wants, to the callers `admit` lets through (the
assembly passes the accounts' check: the core knows no roles): the queue's jobs, the database's
migration against the code's, and the fields the domains report (`Detail`, e.g. the last sync
run). The answer's status stays the plain check's: 200, or 503 naming what is down.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Response
from sqlalchemy import text

from ekimo import db
from ekimo.container import Container
from ekimo.docs import problems
from ekimo.errors import Problem

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0
QUEUE_STATES = ("queued", "active", "incomplete")

Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Detail:
    """A field of the verbose health that a domain reports: `read` returns a JSON-ready value
    (None when there is nothing to report; also shown when it cannot be read)."""

    name: str
    read: Callable[[Container], Awaitable[object]]


Admit = Callable[[Request[Any, Any, Any]], Awaitable[None]]
"""Raises a 401/403 `Problem` unless the request's caller may see the details."""


async def _nobody(request: Request[Any, Any, Any]) -> None:
    raise Problem("the detailed health is not available", status=403)


async def _database_state(container: Container) -> str:
    """ "ok", "unavailable", or "not migrated": reachable, but its schema is older than this
    code's migrations (none applied, or an earlier revision), so requests would fail."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), container.session() as session:
            rows = await session.execute(text("SELECT version_num FROM alembic_version"))
            applied = tuple(sorted(str(r[0]) for r in rows))
    except Exception as exc:
        if db.is_unmigrated(exc):
            return "not migrated"
        logger.warning("health: database check failed", exc_info=True)
        return "unavailable"
    return "not migrated" if await asyncio.to_thread(_behind, applied) else "ok"


def _behind(applied: tuple[str, ...]) -> bool:
    # A revision this code does not know is a newer ekimo's: its schema serves this one too.
    return not applied or (applied != code_heads() and set(applied) <= code_revisions())


async def _queue_ok(container: Container) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await container.queue.count("queued")
    except Exception:
        logger.warning("health: queue check failed", exc_info=True)
        return False
    return True


async def _queue_jobs(container: Container) -> dict[str, int]:
    return {state: await container.queue.count(state) for state in QUEUE_STATES}


@functools.cache
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(db.ALEMBIC_DIR))


@functools.cache
def code_heads() -> tuple[str, ...]:
    """The head revision(s) of the migrations this code ships; read once per process."""
    return tuple(sorted(_scripts().get_heads()))


@functools.cache
def code_revisions() -> frozenset[str]:
    """Every revision of the migrations this code ships; read once per process."""
    return frozenset(script.revision for script in _scripts().walk_revisions())


async def _migration(container: Container) -> dict[str, object]:
    async with container.read_session() as session:
        rows = await session.execute(text("SELECT version_num FROM alembic_version"))
        applied = tuple(sorted(str(r[0]) for r in rows))
    heads = await asyncio.to_thread(code_heads)
    return {
        "revision": ",".join(applied) or None,
        "head": ",".join(heads),
        "at_head": applied == heads,
    }


async def _read(name: str, read: Callable[[Container], Awaitable[object]], c: Container) -> object:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await read(c)
    except Exception:
        logger.warning("health: could not read %s", name, exc_info=True)
        return None


def create_route(*, details: Sequence[Detail] = (), admit: Admit = _nobody) -> HTTPRouteHandler:
    """GET /health, with `details` shown to the callers `admit` lets through."""
    shown = (
        Detail("queue_jobs", _queue_jobs),
        Detail("migration", _migration),
        *details,
    )
    names = ", ".join(f"`{d.name}`" for d in shown)

    # Open to everyone: `opt` marks it public for the access guard (`ekimo.users.guards`), and
    # the bearer-token middleware skips /health; `admit` reads the credential of a verbose call.
    @get(
        "/health",
        tags=["health"],
        summary="Service health",
        description=(
            "200 when the database and the queue answer, 503 naming what is down. With "
            f"`verbose=true` (an admin's token), also {names}."
        ),
        cache=False,
        security=[{}],
        opt={"public": True},
        responses={
            503: ResponseSpec(
                Body,
                description="The database or the queue is unavailable",
                generate_examples=False,
            ),
            **problems(400, 401, 403),
        },
    )
    async def health(
        request: Request[Any, Any, Any],
        container: NamedDependency[Container],
        verbose: Annotated[
            bool,
            Parameter(description="Add the details (see above); needs an admin's bearer token."),
        ] = False,
    ) -> Response[Body]:
        if verbose:
            await admit(request)
        checks = asyncio.gather(_database_state(container), _queue_ok(container))
        extra = asyncio.gather(*(_read(d.name, d.read, container) for d in shown if verbose))
        (database, queue), values = await asyncio.gather(checks, extra)
        ok = database == "ok" and queue
        body: Body = {
            "status": "ok" if ok else "unavailable",
            "database": database,
            "queue": "ok" if queue else "unavailable",
        }
        if verbose:
            body.update({d.name: value for d, value in zip(shown, values, strict=True)})
        return Response(body, status_code=200 if ok else 503)

    return health
