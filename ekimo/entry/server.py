"""`ekimo serve`: uvicorn with the container's graceful stop."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from litestar.types import ASGIApp

from ekimo.container import Container
from ekimo.shutdown import CUT_MARGIN_SECONDS, exit_zero_when_stopped_by


class GracefulServer(uvicorn.Server):
    """uvicorn stops accepting and waits for the requests in flight; the container's shutdown
    begins with it, so imports are cut (rolled back, answered 503) when the grace ends and the
    in-process worker stops at the same time instead of after the last request."""

    def __init__(self, config: uvicorn.Config, container: Container) -> None:
        super().__init__(config)
        self.container = container

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.container.shutdown.begin()
        super().handle_exit(sig, frame)


def run_server(app: ASGIApp, container: Container, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully and return (exit status 0)."""
    grace = container.configured.shutdown_grace_seconds
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # Requests not cut by the shutdown (a download) are cancelled after the cut ones answer.
        timeout_graceful_shutdown=round(grace + CUT_MARGIN_SECONDS),
    )
    exit_zero_when_stopped_by(signal.SIGTERM, signal.SIGINT)
    GracefulServer(config, container).run()
