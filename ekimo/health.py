"""GET /health: is the database reachable, is the queue reachable."""

from __future__ import annotations

import asyncio
import logging

from litestar import get
from litestar.di import NamedDependency
from litestar.response import Response
from sqlalchemy import text

from ekimo.container import Container

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0


async def _database_ok(container: Container) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), container.session() as session:
            await session.execute(text("SELECT 1"))
    except Exception:
        logger.warning("health: database check failed", exc_info=True)
        return False
    return True


async def _queue_ok(container: Container) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await container.queue.count("queued")
    except Exception:
        logger.warning("health: queue check failed", exc_info=True)
        return False
    return True


# Open to everyone: `opt` marks it public for the access guard (`ekimo.users.guards`).
@get(
    "/health",
    tags=["health"],
    summary="Service health",
    cache=False,
    security=[{}],
    opt={"public": True},
)
async def health(container: NamedDependency[Container]) -> Response[dict[str, str]]:
    """200 when the database and the queue answer, 503 naming what is down."""
    database, queue = await asyncio.gather(_database_ok(container), _queue_ok(container))
    body = {
        "status": "ok" if database and queue else "unavailable",
        "database": "ok" if database else "unavailable",
        "queue": "ok" if queue else "unavailable",
    }
    return Response(body, status_code=200 if database and queue else 503)
