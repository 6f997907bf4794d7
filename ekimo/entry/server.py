"""`ekimo serve`: uvicorn in one process, or N API processes on one port with the background
worker once beside them; SIGTERM and SIGINT stop either gracefully, with exit status 0."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import uvicorn
from litestar.types import ASGIApp
from uvicorn.supervisors import Multiprocess

from ekimo import db, embedded
from ekimo.metrics import MULTIPROCESS_DIR
from ekimo.settings import Settings
from ekimo.shutdown import CUT_MARGIN_SECONDS, exit_zero_when_stopped_by

# What the API processes of `--workers N` build their app with (see `ekimo.entry.asgi`).
APP_FACTORY = "ekimo.entry.asgi:create"
# The worker's own stop takes its grace and a cancelled job's bookkeeping; then it is killed.
WORKER_STOP_MARGIN_SECONDS = 30.0


def _config(
    app: ASGIApp | str, settings: Settings, host: str, port: int, workers: int = 1
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # Requests not cut by the shutdown (a download) are cancelled after the cut ones answer.
        timeout_graceful_shutdown=round(settings.shutdown_grace_seconds + CUT_MARGIN_SECONDS),
        factory=isinstance(app, str),
        workers=workers,
    )


def run_one(app: ASGIApp, settings: Settings, host: str, port: int) -> None:
    """One process: the app (built with `served=True`) and, if it runs one, its worker."""
    config = _config(app, settings, host, port)
    exit_zero_when_stopped_by(signal.SIGTERM, signal.SIGINT)
    uvicorn.Server(config).run()


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of the API processes, which also stops the background worker
    process as soon as the stop begins, so its jobs get the grace alongside the requests."""

    def __init__(self, config: uvicorn.Config, worker: subprocess.Popen[bytes] | None) -> None:
        super().__init__(config, sockets=[config.bind_socket()])
        self.worker = worker

    def _stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)

    def handle_term(self) -> None:
        self._stop_worker()
        super().handle_term()

    def handle_int(self) -> None:
        self._stop_worker()
        super().handle_int()


def run_many(settings: Settings, workers: int, host: str, port: int, *, run_worker: bool) -> None:
    """`workers` API processes on one port; the scheduler and the worker run once, in a
    process of their own (`ekimo worker`), not once per API process."""
    if settings.database_url is None:
        # Started and migrated once, here; the processes get its URL and key, and the server
        # stops when this process, the last to hold it, exits.
        url = embedded.start_server(settings.state_dir)
        asyncio.run(db.upgrade_async(url))
        os.environ["DATABASE_URL"] = url
        os.environ["SECRET_KEY"] = settings.secret_key or embedded.secret_key_for(
            settings.state_dir
        )
    worker = subprocess.Popen([sys.executable, "-m", "ekimo", "worker"]) if run_worker else None
    # GET /metrics sums the requests of every API process (each counts in a file of its own in
    # this directory): fresh for this run, removed after it. One the operator set is used as is.
    metrics_dir = None
    if settings.metrics and not os.environ.get(MULTIPROCESS_DIR):
        metrics_dir = tempfile.mkdtemp(prefix="ekimo-metrics-")
        os.environ[MULTIPROCESS_DIR] = metrics_dir
    config = _config(APP_FACTORY, settings, host, port, workers)
    try:
        _Supervisor(config, worker).run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if worker is not None:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(settings.shutdown_grace_seconds + WORKER_STOP_MARGIN_SECONDS)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
