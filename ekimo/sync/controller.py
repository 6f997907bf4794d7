"""Sync API: start a run, list runs, status; and `POST /products`, ekimo as the external API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from advanced_alchemy.service import OffsetPagination
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo.container import Container
from ekimo.docs import problems
from ekimo.params import Id, Offset, page_size
from ekimo.sync import jobs, receiver
from ekimo.sync.receiver import ReceiveResult
from ekimo.sync.runs import SyncRuns
from ekimo.sync.schemas import SyncJobAccepted, SyncRunOut, SyncStatus
from ekimo.sync.service import SyncService
from ekimo.uploads import read_body
from ekimo.users.guards import allow
from ekimo.users.principals import Principal
from ekimo.users.roles import READ_SYNC, RECEIVE, RUN_SYNC

# Room for receiver.MAX_ITEMS products of the longest legal values, and to spare.
MAX_RECEIVE_BODY = 16 * 1024 * 1024
MAX_RUNS_PAGE = 100


class SyncController(Controller):
    path = "/sync"
    tags = ["sync"]
    dependencies = {"runs": Provide(create_service_provider(SyncRuns))}

    @post(
        "/",
        opt=allow(RUN_SYNC),
        status_code=202,
        summary="Run a sync soon, on the worker",
        responses=problems(401, 409),
    )
    async def start_sync(
        self, request: Request[Principal, Any, Any], container: NamedDependency[Container]
    ) -> SyncJobAccepted:
        return SyncJobAccepted(job_id=await jobs.start_sync(container, request.user, "api"))

    @get(
        "/runs",
        summary="Sync runs, newest first",
        responses=problems(400, 401, 422),
        opt=allow(READ_SYNC),
    )
    async def list_runs(
        self,
        runs: NamedDependency[SyncRuns],
        limit: Annotated[int, page_size(MAX_RUNS_PAGE)] = 20,
        offset: Offset = 0,
    ) -> OffsetPagination[SyncRunOut]:
        return await runs.page(limit=limit, offset=offset)

    @get(
        "/runs/{run_id:int}",
        summary="One sync run",
        responses=problems(400, 401, 404),
        opt=allow(READ_SYNC),
    )
    async def get_run(self, runs: NamedDependency[SyncRuns], run_id: Id) -> SyncRunOut:
        return await runs.one(run_id)

    @get(
        "/status",
        opt=allow(READ_SYNC),
        summary="Products waiting to be synced and the last run",
        responses=problems(401),
    )
    async def status(
        self, container: NamedDependency[Container], runs: NamedDependency[SyncRuns]
    ) -> SyncStatus:
        pending = await SyncService(container).pending_count()
        return SyncStatus(
            pending=pending.count, pending_exact=pending.exact, last_run=await runs.last()
        )


def _string_or_number(description: str) -> Schema:
    return Schema(
        one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NUMBER, minimum=0)],
        description=description,
    )


@dataclass
class _ReceiveOperation(Operation):
    """The handler reads the raw body (its size checked as it arrives): declare what it reads."""

    def __post_init__(self) -> None:
        product = Schema(
            type=OpenAPIType.OBJECT,
            required=["barcode", "name", "price", "quantity", "last_updated"],
            properties={
                "barcode": Schema(
                    one_of=[
                        Schema(type=OpenAPIType.STRING, pattern="^[0-9]{1,14}$"),
                        Schema(type=OpenAPIType.INTEGER, minimum=0),
                    ],
                    description="1 to 14 digits; unique within the request",
                ),
                "name": Schema(type=OpenAPIType.STRING, min_length=1, max_length=255),
                "price": _string_or_number('a decimal, at most 2 places, e.g. "19.99"'),
                "quantity": _string_or_number('a decimal, at most 3 places, e.g. "1.5"'),
                "last_updated": Schema(
                    type=OpenAPIType.STRING,
                    format=OpenAPIFormat.DATE_TIME,
                    description="ISO 8601; without a zone, UTC; the latest wins",
                ),
            },
        )
        body = Schema(
            type=OpenAPIType.OBJECT,
            required=["products"],
            properties={
                "products": Schema(
                    type=OpenAPIType.ARRAY, items=product, max_items=receiver.MAX_ITEMS
                )
            },
        )
        self.request_body = RequestBody(
            required=True, content={"application/json": OpenAPIMediaType(schema=body)}
        )


@post(
    "/products",
    opt=allow(RECEIVE),
    status_code=201,
    tags=["sync"],
    summary="Receive products (ekimo as the external API of another ekimo)",
    request_max_body_size=None,  # read_body enforces MAX_RECEIVE_BODY, with a 413 all clients read
    responses=problems(400, 401, 413, 422),
    operation_class=_ReceiveOperation,
)
async def receive_products(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> ReceiveResult:
    """Validate every item (422 naming the item and field, nothing applied), then upsert all:
    the latest `last_updated` wins, received products are stored as already synced."""
    return await receiver.receive(db_session, await read_body(request, MAX_RECEIVE_BODY))


# A plain handler, not a Controller: Litestar 2.25 refuses a Controller whose path another
# handler already uses (duplicate OPTIONS handler), and GET/PUT /products live elsewhere.
routes: list[ControllerRouterHandler] = [SyncController, receive_products]
