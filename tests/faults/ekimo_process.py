"""A real `ekimo serve` in a subprocess, for the fault tests: start it, wait until it answers,
stop it; bounded by deadlines, never by fixed sleeps."""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

STARTUP_SECONDS = 30.0
STOP_SECONDS = 20.0
# A command's whole run (an import of a large file, a sync) in the fault tests.
EXIT_SECONDS = 45.0


def bytecode_cached(env: dict[str, str], cache: Path) -> dict[str, str]:
    """`env` with Python's bytecode kept in `cache`, outside the tree: without it every process
    compiles the whole stack again (these machines set PYTHONDONTWRITEBYTECODE)."""
    cached = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(cache)
    return cached


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Spawned:
    """An `ekimo` command in a subprocess, its output in a file (a pipe nobody reads while it
    runs could fill and block it)."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str, log: str = "") -> None:
        self.log = cwd / f"{log or args[0]}-{secrets.token_hex(3)}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ekimo", *args],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = EXIT_SECONDS) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"ekimo did not exit within {timeout} s:\n{self.output}") from None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_SECONDS) -> int:
        """Send `signum`, wait for the exit, return the status; killed if it ignores it."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"ekimo ignored signal {signum}:\n{self.output}") from None


@contextlib.contextmanager
def spawned(env: dict[str, str], cwd: Path, *args: str) -> Iterator[Spawned]:
    """`ekimo *args` running; killed on the way out if the test left it running."""
    process = Spawned(env, cwd, *args)
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


class Served(Spawned):
    """One `ekimo serve` process and its base URL."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()  # a given port: a process that takes a dead one's place
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            env, cwd, "serve", "--port", str(self.port), *args, log=f"serve-{self.port}"
        )

    def wait_healthy(self, timeout: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while True:
                assert self.process.poll() is None, f"ekimo serve exited early:\n{self.output}"
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/health").status_code == 200:
                        return
                assert time.monotonic() < deadline, f"ekimo serve not healthy:\n{self.output}"
                time.sleep(0.1)


@contextlib.contextmanager
def served(
    env: dict[str, str],
    cwd: Path,
    *args: str,
    timeout: float = STARTUP_SECONDS,
    port: int | None = None,
) -> Iterator[Served]:
    """`ekimo serve` started and healthy; killed on the way out if the test left it running."""
    server = Served(env, cwd, *args, port=port)
    try:
        server.wait_healthy(timeout)
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
