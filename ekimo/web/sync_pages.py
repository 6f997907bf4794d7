"""The sync: pending products, the last run, the runs, and Sync now."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

routes: list[ControllerRouterHandler] = []
