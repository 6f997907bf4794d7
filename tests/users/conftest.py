"""An app with one extra protected route, to check what authentication hands to handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Request, get

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings
from ekimo.users.guards import allow
from ekimo.users.principals import Principal
from ekimo.users.roles import OWN_ACCOUNT
from tests.conftest import serve

WHOAMI = "/test-only/whoami"


@get(WHOAMI, opt=allow(OWN_ACCOUNT))
async def whoami(request: Request[Principal, Any, Any]) -> dict[str, Any]:
    return {"id": request.user.id, "username": request.user.username}


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus GET /test-only/whoami (no exclusions: it needs a token)."""
    app = create_app(Container(settings))
    app.register(whoami)
    async with serve(app) as test_client:
        yield test_client
