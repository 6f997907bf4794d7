"""create_app(container) -> Litestar: routes, OpenAPI, auth, errors, the in-process worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from http import HTTPStatus
from importlib.metadata import version
from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo import docs, health, worker
from ekimo.container import Container
from ekimo.products.catalog_controller import routes as catalog_routes
from ekimo.products.controller import routes as product_routes
from ekimo.settings import Settings
from ekimo.sync.controller import routes as sync_routes
from ekimo.users.auth import auth_plugin
from ekimo.users.controller import routes as user_routes

logger = logging.getLogger(__name__)


def _client_error(exc: HTTPException) -> ProblemDetailsException:
    """Litestar's own errors (a bad query parameter, malformed JSON, an unknown path) as problem
    documents whose `detail` says what to fix; the plugin's default puts it in `title`."""
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if exc.detail != phrase else ""
    if isinstance(exc.extra, list):  # a ValidationException: [{"key", "message", "source"}]
        fields = [
            f"{item['key']}: {item['message']}"
            for item in exc.extra
            if isinstance(item, dict) and "key" in item and "message" in item
        ]
        if fields:
            detail = f"{detail}: {'; '.join(fields)}" if detail else "; ".join(fields)
    return ProblemDetailsException(
        status_code=exc.status_code,
        title=phrase,
        detail=detail or phrase,
        extra=exc.extra,
        headers=exc.headers,
    )


def _problem_response(
    request: Request[Any, Any, Any], exc: ProblemDetailsException
) -> Response[Any]:
    """Every problem document has a `title` (the status phrase unless the raiser chose one)."""
    if exc.title is None:
        exc.title = HTTPStatus(exc.status_code).phrase
    return exc.to_response(request)


def _internal_error(exc: Exception) -> ProblemDetailsException:
    logger.exception("unhandled error", exc_info=exc)
    return ProblemDetailsException(status_code=500, detail="Internal server error")


def create_app(settings: Settings, *, run_worker: bool = False) -> Litestar:
    """Build the app; the container starts with the app and stops with it."""
    container = Container(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncGenerator[None]:
        async with container:
            if not run_worker:
                yield
                return
            saq_worker = worker.create_worker(container, handle_signals=False)
            task = asyncio.create_task(saq_worker.start(), name="saq-worker")
            try:
                yield
            finally:
                await saq_worker.stop()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def provide_db_session() -> AsyncGenerator[AsyncSession]:
        async with container.session() as session:
            yield session

    def provide_container() -> Container:
        return container

    return Litestar(
        route_handlers=[
            health.health,
            docs.assets_router(),
            *user_routes,
            *product_routes,
            *catalog_routes,
            *sync_routes,
        ],
        dependencies={
            "container": Provide(provide_container, sync_to_thread=False),
            "db_session": Provide(provide_db_session),
        },
        lifespan=[lifespan],
        openapi_config=docs.openapi_config(version("ekimo")),
        plugins=[
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    exception_handler=_problem_response,
                    enable_for_all_http_exceptions=True,
                    exception_to_problem_detail_map={
                        HTTPException: _client_error,
                        Exception: _internal_error,
                    },
                )
            ),
            auth_plugin(container, settings),
        ],
        logging_config=None,
    )
