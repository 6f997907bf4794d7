"""OpenAPI at /docs, with Swagger UI's assets served by ekimo itself (no CDN)."""

from __future__ import annotations

from http import HTTPStatus

import msgspec
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router  # pyright: ignore[reportUnknownVariableType]
from litestar.types import ControllerRouterHandler
from openapi_ui_bundles import swagger_ui  # pyright: ignore[reportMissingTypeStubs]

ASSETS_PATH = "/docs/assets"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(msgspec.Struct):
    """An error (RFC 9457): `detail` says what to fix. Some errors add members: `field` (the
    field to fix), `extra` (each invalid parameter), an import's report."""

    status: int
    title: str
    detail: str


def problems(*status_codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for the errors a route answers: problem documents, not the default
    error schema Litestar would show."""
    return {
        code: ResponseSpec(
            Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
            description=HTTPStatus(code).phrase,
        )
        for code in status_codes
    }


def openapi_config(version: str) -> OpenAPIConfig:
    favicon = f'<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">'
    return OpenAPIConfig(
        title="ekimo",
        version=version,
        description="Product catalog: import CSV/XLSX, browse, export, sync to an external API.",
        path="/docs",
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                css_url=f"{ASSETS_PATH}/swagger-ui.css",
                standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
                favicon=favicon,
            )
        ],
    )


def assets_router() -> ControllerRouterHandler:
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[swagger_ui.static_path],  # pyright: ignore[reportUnknownMemberType]
        include_in_schema=False,
        name="docs-assets",
    )
