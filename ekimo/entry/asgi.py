"""The app of each API process of `ekimo serve --workers N`, built by uvicorn in the process
(`ekimo.entry.asgi:create`, a factory): one container per process, settings from the
environment the parent prepared."""

from __future__ import annotations

from litestar.types import ASGIApp

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.logs import configure_logging
from ekimo.settings import load_settings


def create() -> ASGIApp:
    settings = load_settings()
    configure_logging(settings)
    return create_app(Container(settings), served=True)
