"""A real `ekimo serve` in a subprocess, for the fault tests: start it, wait until it answers,
stop it; bounded by deadlines, never by fixed sleeps."""

from __future__ import annotations

import contextlib
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


class Served:
    """One `ekimo serve` process, its base URL, and its output in a file (a pipe nobody reads
    while it runs could fill and block it)."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()  # a given port: a process that takes a dead one's place
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"serve-{self.port}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ekimo", "serve", "--port", str(self.port), *args],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

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

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_SECONDS) -> int:
        """Send `signum`, wait for the exit, return the status."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"ekimo serve ignored signal {signum}:\n{self.output}") from None


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
