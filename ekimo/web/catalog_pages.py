"""The catalog: products with search, filter, sorting and pages; one product; exports."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from ekimo.users.guards import allow
from ekimo.users.roles import READ_CATALOG
from ekimo.web.pages import render


@get("/catalog", opt=allow(READ_CATALOG))
async def catalog(request: Request[Any, Any, Any]) -> Template:
    return render(request, "catalog.html")


routes: list[ControllerRouterHandler] = [catalog]
