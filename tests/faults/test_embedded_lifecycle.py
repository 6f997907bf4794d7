"""The embedded PostgreSQL stops with the last ekimo process using it, however that process
ends short of SIGKILL; after a SIGKILL, the next run prunes the dead handle and stops the server
when it is stopped itself."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.ekimo_process import bytecode_cached, served

# Each test ends within this, whatever goes wrong: three starts take well under half of it.
TEST_SECONDS = 55.0


class Budget:
    """What is left of the test's time, for each wait in it."""

    def __init__(self, seconds: float = TEST_SECONDS) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


@pytest.fixture(autouse=True)
def clean_database() -> None:
    """Overrides the suite's: this test uses no database of the run's, only its own server."""


@pytest.fixture(autouse=True)
def reset_login_rate_limit() -> None:
    """Overrides the suite's (which needs the run's database): no login here."""


def postmasters(pgdata: Path) -> list[int]:
    """Pids of the postgres servers whose command line names `pgdata` (`postgres -D PGDATA`).
    A backend just forked has its server's command line until it sets its own title: the
    children of a match are left out."""
    found: dict[int, int] = {}  # pid -> parent pid
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
        if args and args[0].endswith(b"/postgres") and os.fsencode(pgdata) in args:
            found[int(entry.name)] = parent
    return [pid for pid, parent in found.items() if parent not in found]


def wait_until_gone(pgdata: Path, budget: Budget) -> None:
    while postmasters(pgdata):
        assert budget.left() > 0, f"postgres still running on {pgdata}"
        time.sleep(0.1)


def handles(pgdata: Path) -> list[int]:
    path = pgdata / ".handle_pids.json"
    return json.loads(path.read_text() or "[]") if path.is_file() else []


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Where the test's `ekimo serve` runs, its state in the default `.ekimo` there. Not under
    pytest's tmp_path: as root, PostgreSQL runs as pgserver's own user, which must traverse the
    path, and every pytest session that starts makes /tmp/pytest-of-root private again."""
    workdir = Path(tempfile.mkdtemp(prefix="ekimo-embedded-"))
    yield workdir
    for pid in postmasters(workdir / ".ekimo" / "pgdata"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def embedded_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No DATABASE_URL: `ekimo serve` starts its own PostgreSQL in `.ekimo` where it runs.
    (EKIMO_STATE_DIR would say where, but the settings refuse it as a string today.)"""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SYNC_", "EKIMO_")) and k not in ("DATABASE_URL", "SECRET_KEY")
    }
    env["EKIMO_QUEUE_NAME"] = f"ekimo-embedded-{secrets.token_hex(4)}"
    return bytecode_cached(env, tmp_path_factory.getbasetemp() / "pycache")


def test_embedded_server_stops_with_the_last_process(
    embedded_env: dict[str, str], workdir: Path
) -> None:
    pgdata = workdir.resolve() / ".ekimo" / "pgdata"
    budget = Budget()

    with served(embedded_env, workdir, "--no-worker", timeout=budget.left()) as first:
        assert len(postmasters(pgdata)) == 1
        assert handles(pgdata) == [first.process.pid]
        status = first.stop(signal.SIGTERM, budget.left())
    assert status in (0, -signal.SIGTERM), first.output
    wait_until_gone(pgdata, budget)
    assert handles(pgdata) == []

    with served(embedded_env, workdir, "--no-worker", timeout=budget.left()) as killed:
        killed.stop(signal.SIGKILL, budget.left())
    # Nothing runs in a process killed so: the server stays, with the dead process's handle.
    assert len(postmasters(pgdata)) == 1
    assert handles(pgdata) == [killed.process.pid]

    with served(embedded_env, workdir, "--no-worker", timeout=budget.left()) as last:
        assert handles(pgdata) == [last.process.pid]  # the dead handle pruned
        status = last.stop(signal.SIGTERM, budget.left())
    assert status in (0, -signal.SIGTERM), last.output
    wait_until_gone(pgdata, budget)
    assert handles(pgdata) == []


def test_a_dead_handle_is_pruned_when_the_server_is_down(
    embedded_env: dict[str, str], workdir: Path
) -> None:
    """After a reboot (the server and its users gone) a stale pid may name a live process."""
    budget = Budget()
    with served(embedded_env, workdir, "--no-worker", timeout=budget.left()) as first:
        first.stop(signal.SIGTERM, budget.left())
    pgdata = workdir.resolve() / ".ekimo" / "pgdata"
    wait_until_gone(pgdata, budget)
    # pid 1 is alive, but cannot hold a handle on a server that is not running.
    (pgdata / ".handle_pids.json").write_text(json.dumps([1]))

    with served(embedded_env, workdir, "--no-worker", timeout=budget.left()) as second:
        assert handles(pgdata) == [second.process.pid]
        second.stop(signal.SIGHUP, budget.left())
    wait_until_gone(pgdata, budget)


def test_serve_and_worker_share_the_server_and_the_last_stops_it(
    embedded_env: dict[str, str], workdir: Path
) -> None:
    budget = Budget()
    pgdata = workdir.resolve() / ".ekimo" / "pgdata"
    with served(embedded_env, workdir, "--no-worker", timeout=budget.left()) as api:
        worker = subprocess.Popen(
            [sys.executable, "-m", "ekimo", "worker", "--no-schedule"],
            env=embedded_env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while worker.pid not in handles(pgdata):  # it has joined the server
                assert worker.poll() is None, "ekimo worker exited early"
                assert budget.left() > 0, "ekimo worker did not start"
                time.sleep(0.1)
            api.stop(signal.SIGTERM, budget.left())
            # The worker still uses the server: it stays.
            assert handles(pgdata) == [worker.pid]
            assert len(postmasters(pgdata)) == 1
            # SIGHUP, as a closed terminal sends it, ends the worker at once (SIGTERM is SAQ's:
            # a graceful stop, whose normal exit runs pgserver's own exit handler).
            worker.send_signal(signal.SIGHUP)
            assert worker.wait(budget.left()) == -signal.SIGHUP
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    wait_until_gone(pgdata, budget)
    assert handles(pgdata) == []
