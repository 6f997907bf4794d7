"""Import a file from the console: check (a dry run) or import, the report with its errors, and the progress of a queued import."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

routes: list[ControllerRouterHandler] = []
