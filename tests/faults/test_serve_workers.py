"""`ekimo serve --workers N`: N API processes on one port, the background worker once beside
them, and SIGTERM stops them all gracefully (exit status 0, no process left)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.faults.ekimo_process import STOP_SECONDS, bytecode_cached, served

DEADLINE_S = 30.0


def role(process: psutil.Process) -> str:
    """What a descendant of `ekimo serve` is: an API process, the worker, or something else."""
    try:
        command = " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return "gone"
    if "multiprocessing.spawn" in command and "spawn_main" in command:
        return "api"
    if command.endswith("-m ekimo worker"):
        return "worker"
    return "other"


def roles_of(pid: int) -> list[str]:
    return sorted(role(child) for child in psutil.Process(pid).children(recursive=True))


def test_workers_n_runs_n_api_processes_and_one_worker_and_stops_them_all(
    cli_env: dict[str, str], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = bytecode_cached(
        {**cli_env, "EKIMO_QUEUE_NAME": cli_env["EKIMO_QUEUE_NAME"] + "-n", "WEB_CONCURRENCY": "2"},
        tmp_path_factory.getbasetemp() / "pycache",
    )
    with served(env, tmp_path) as api:
        deadline = time.monotonic() + DEADLINE_S
        while (found := roles_of(api.process.pid)).count("api") < 2:
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
        assert found.count("api") == 2, found
        assert found.count("worker") == 1, found
        descendants = psutil.Process(api.process.pid).children(recursive=True)
        with httpx.Client(base_url=api.url) as http:
            assert all(http.get("/health").status_code == 200 for _ in range(20))
        status = api.stop(signal.SIGTERM, STOP_SECONDS)

    assert status == 0, api.output
    gone, alive = psutil.wait_procs(descendants, timeout=STOP_SECONDS)
    assert not alive, [p.cmdline() for p in alive]
    assert gone
    assert "Traceback" not in api.output
