"""Accounts and API keys, for admins."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

routes: list[ControllerRouterHandler] = []
