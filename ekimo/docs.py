"""OpenAPI at /docs, with Swagger UI's assets served by ekimo itself (no CDN)."""

from __future__ import annotations

from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router  # pyright: ignore[reportUnknownVariableType]
from litestar.types import ControllerRouterHandler
from openapi_ui_bundles import swagger_ui  # pyright: ignore[reportMissingTypeStubs]

ASSETS_PATH = "/docs/assets"


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
