"""create_app(container) -> Litestar: routes, OpenAPI, auth, errors, the in-process worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from importlib.metadata import version
from typing import Any

from litestar import Litestar, Request
from litestar.di import Provide
from saq import Worker
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo import docs, health, metrics
from ekimo.container import Container
from ekimo.entry import worker
from ekimo.imports.controller import routes as import_routes
from ekimo.imports.figures import import_figures
from ekimo.logs import log_requests
from ekimo.problem_documents import problem_details_plugin
from ekimo.products.controller import routes as catalog_routes
from ekimo.products.figures import catalog_figures
from ekimo.request_ids import with_request_ids
from ekimo.shutdown import also_on_stop_signals
from ekimo.sync.controller import routes as sync_routes
from ekimo.sync.figures import last_run, sync_figures
from ekimo.users.accounts import routes as account_routes
from ekimo.users.audit_controller import routes as audit_routes
from ekimo.users.auth import auth_plugin
from ekimo.users.controller import routes as user_routes
from ekimo.users.guards import admission, authorize, document_permissions
from ekimo.users.keys_controller import routes as key_routes
from ekimo.users.roles import READ_HEALTH_DETAILS
from ekimo.web.console import console_router, template_config
from ekimo.web.console import routes as root_routes

logger = logging.getLogger(__name__)


async def _stop_on_shutdown(container: Container, saq_worker: Worker[Any]) -> None:
    """Jobs get the shutdown grace alongside the requests, not after the last one ends."""
    await container.shutdown.wait_begun()
    await saq_worker.stop()


def create_app(container: Container, *, run_worker: bool = False, served: bool = False) -> Litestar:
    """Build the app on `container`. A container not yet started starts with the app and stops
    with it; a running one (a test's, shared by several apps) is borrowed as it is.

    `served`: run by `ekimo serve`, whose stop signals begin the container's shutdown (the
    grace of imports and jobs in flight) as well as the server's."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncGenerator[None]:
        if served:
            also_on_stop_signals(container.shutdown.begin)
        async with contextlib.AsyncExitStack() as stack:
            if not container.started:
                await stack.enter_async_context(container)
            if not run_worker:
                yield
                return
            saq_worker = worker.create_worker(container, handle_signals=False)
            task = asyncio.create_task(saq_worker.start(), name="saq-worker")
            stopper = asyncio.create_task(_stop_on_shutdown(container, saq_worker))
            try:
                yield
            finally:
                if container.shutdown.begun:
                    await stopper  # the worker has been stopping since the signal
                else:
                    stopper.cancel()
                await saq_worker.stop()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def provide_db_session(request: Request[Any, Any, Any]) -> AsyncGenerator[AsyncSession]:
        # GET and HEAD only read (the routes that write are POST, PUT, PATCH and DELETE).
        reading = request.method in ("GET", "HEAD")
        async with container.read_session() if reading else container.session() as session:
            yield session

    def provide_container() -> Container:
        return container

    # What each domain reports to GET /metrics and GET /health?verbose=true.
    measured = (
        metrics.Metrics(container, [catalog_figures, import_figures, sync_figures])
        if container.configured.metrics
        else None
    )
    health_route = health.create_route(
        details=[health.Detail("last_sync", last_run)],
        admit=admission(container, READ_HEALTH_DETAILS),
    )

    app = Litestar(
        route_handlers=[
            health_route,
            *([measured.route] if measured is not None else []),
            docs.assets_router(),
            *user_routes,
            *account_routes,
            *audit_routes,
            *key_routes,
            *import_routes,
            *catalog_routes,
            *sync_routes,
            console_router(container),
            *root_routes,
        ],
        dependencies={
            "container": Provide(provide_container, sync_to_thread=False),
            "db_session": Provide(provide_db_session),
        },
        # Advanced Alchemy's service providers name the session type as a string.
        signature_namespace={"AsyncSession": AsyncSession},
        # Deny by default: every route's declared permission, checked on every request.
        guards=[authorize],
        lifespan=[lifespan],
        template_config=template_config(),
        openapi_config=docs.openapi_config(version("ekimo")),
        plugins=[
            problem_details_plugin(),
            auth_plugin(container),
        ],
        logging_config=None,
    )
    document_permissions(app)
    # Around Litestar's whole handler (unknown paths and error answers included), not per route.
    if measured is not None:
        app.asgi_handler = measured.count_requests(app.asgi_handler)
    app.asgi_handler = with_request_ids(log_requests(app.asgi_handler))
    return app
