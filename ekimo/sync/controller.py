"""Sync API: start a run, list runs, status; and `POST /products`, ekimo as the external API."""

from __future__ import annotations

from typing import Annotated, Any

from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo.container import Container
from ekimo.docs import problems
from ekimo.sync import receiver
from ekimo.sync.jobs import SYNC_JOB_TIMEOUT, sync_products
from ekimo.sync.models import SyncRun
from ekimo.sync.receiver import ReceiveResult
from ekimo.sync.schemas import SyncJobAccepted, SyncRunOut, SyncRunPage, SyncStatus
from ekimo.sync.service import SyncService

# 10,000 products of the longest legal values fit well within this.
MAX_RECEIVE_BODY = 16 * 1024 * 1024


class SyncRunRepository(SQLAlchemyAsyncRepository[SyncRun]):
    model_type = SyncRun


class SyncController(Controller):
    path = "/sync"
    tags = ["sync"]

    @post(
        "/",
        status_code=202,
        summary="Run a sync soon, on the worker",
        responses=problems(401, 409),
    )
    async def start_sync(self, container: NamedDependency[Container]) -> SyncJobAccepted:
        job = await container.queue.enqueue(
            sync_products.__qualname__, trigger="api", timeout=SYNC_JOB_TIMEOUT
        )
        if job is None:  # pragma: no cover - only with a fixed job key
            raise ProblemDetailsException(status_code=409, detail="a sync is already queued")
        return SyncJobAccepted(job_id=job.id)

    @get("/runs", summary="Sync runs, newest first", responses=problems(400, 401))
    async def list_runs(
        self,
        db_session: NamedDependency[AsyncSession],
        limit: Annotated[int, Parameter(ge=1, le=100, description="page size")] = 20,
        offset: Annotated[int, Parameter(ge=0, description="runs to skip")] = 0,
    ) -> SyncRunPage:
        repository = SyncRunRepository(session=db_session)
        runs, total = await repository.get_many_and_count(
            LimitOffset(limit=limit, offset=offset), OrderBy(field_name="id", sort_order="desc")
        )
        return SyncRunPage(
            items=[SyncRunOut.of(r) for r in runs], total=total, limit=limit, offset=offset
        )

    @get("/runs/{run_id:int}", summary="One sync run", responses=problems(400, 401, 404))
    async def get_run(
        self, db_session: NamedDependency[AsyncSession], run_id: FromPath[int]
    ) -> SyncRunOut:
        run = await SyncRunRepository(session=db_session).get_one_or_none(id=run_id)
        if run is None:
            raise ProblemDetailsException(
                status_code=404, detail=f"sync run {run_id} does not exist"
            )
        return SyncRunOut.of(run)

    @get(
        "/status",
        summary="Products waiting to be synced and the last run",
        responses=problems(401),
    )
    async def status(
        self, container: NamedDependency[Container], db_session: NamedDependency[AsyncSession]
    ) -> SyncStatus:
        pending = await SyncService(container).pending_count()
        last = (
            await db_session.execute(select(SyncRun).order_by(SyncRun.id.desc()).limit(1))
        ).scalar_one_or_none()
        return SyncStatus(pending=pending, last_run=SyncRunOut.of(last) if last else None)


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
    body = await request.body()
    try:
        return await receiver.receive(db_session, body)
    except receiver.TooManyItems as exc:
        raise ProblemDetailsException(
            status_code=413, detail=str(exc), extra={"max_items": receiver.MAX_ITEMS}
        ) from None
    except receiver.InvalidPayload as exc:
        raise ProblemDetailsException(
            status_code=422,
            detail=f"nothing applied; fix {exc}",
            extra={"errors": [e.as_dict() for e in exc.errors]},
        ) from None


# A plain handler, not a Controller: Litestar 2.25 refuses a Controller whose path another
# handler already uses (duplicate OPTIONS handler), and GET/PUT /products live elsewhere.
routes: list[ControllerRouterHandler] = [SyncController, receive_products]
