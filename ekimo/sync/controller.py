"""Sync API: start a run, list runs, status; and `POST /products`, ekimo as the external API."""

from __future__ import annotations

from typing import Annotated, Any

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from advanced_alchemy.service import OffsetPagination
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, Parameter
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo.container import Container
from ekimo.docs import problems
from ekimo.sync import receiver
from ekimo.sync.jobs import queue_sync
from ekimo.sync.receiver import ReceiveResult
from ekimo.sync.runs import SyncRuns
from ekimo.sync.schemas import SyncJobAccepted, SyncRunOut, SyncStatus
from ekimo.sync.service import SyncService

# Room for receiver.MAX_ITEMS products of the longest legal values, and to spare.
MAX_RECEIVE_BODY = 16 * 1024 * 1024


class SyncController(Controller):
    path = "/sync"
    tags = ["sync"]
    dependencies = {"runs": Provide(create_service_provider(SyncRuns))}

    @post(
        "/",
        status_code=202,
        summary="Run a sync soon, on the worker",
        responses=problems(401, 409),
    )
    async def start_sync(self, container: NamedDependency[Container]) -> SyncJobAccepted:
        return SyncJobAccepted(job_id=await queue_sync(container.queue, "api"))

    @get("/runs", summary="Sync runs, newest first", responses=problems(400, 401))
    async def list_runs(
        self,
        runs: NamedDependency[SyncRuns],
        limit: Annotated[int, Parameter(ge=1, le=100, description="page size")] = 20,
        offset: Annotated[int, Parameter(ge=0, description="runs to skip")] = 0,
    ) -> OffsetPagination[SyncRunOut]:
        return await runs.page(limit=limit, offset=offset)

    @get("/runs/{run_id:int}", summary="One sync run", responses=problems(400, 401, 404))
    async def get_run(self, runs: NamedDependency[SyncRuns], run_id: FromPath[int]) -> SyncRunOut:
        return await runs.one(run_id)

    @get(
        "/status",
        summary="Products waiting to be synced and the last run",
        responses=problems(401),
    )
    async def status(
        self, container: NamedDependency[Container], runs: NamedDependency[SyncRuns]
    ) -> SyncStatus:
        pending = await SyncService(container).pending_count()
        return SyncStatus(pending=pending, last_run=await runs.last())


@post(
    "/products",
    status_code=201,
    tags=["sync"],
    summary="Receive products (ekimo as the external API of another ekimo)",
    request_max_body_size=MAX_RECEIVE_BODY,
    responses=problems(400, 401, 413, 422),
)
async def receive_products(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> ReceiveResult:
    """Validate every item (422 naming the item and field, nothing applied), then upsert all:
    the latest `last_updated` wins, received products are stored as already synced."""
    return await receiver.receive(db_session, await request.body())


# A plain handler, not a Controller: Litestar 2.25 refuses a Controller whose path another
# handler already uses (duplicate OPTIONS handler), and GET/PUT /products live elsewhere.
routes: list[ControllerRouterHandler] = [SyncController, receive_products]
