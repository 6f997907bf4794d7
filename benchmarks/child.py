"""Run `ekimo ...` in a child process that reports its own resource usage.

The child measures itself (getrusage(RUSAGE_SELF)), so other children of the benchmark process,
earlier or still running, never count in its peak memory or CPU time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CODE = (
    "import resource, sys\n"
    "from ekimo.entry.cli import main\n"
    "sys.argv = ['ekimo', *sys.argv[1:]]\n"
    "try:\n    main()\nexcept SystemExit as stop:\n    code = stop.code\nelse:\n    code = 0\n"
    "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print('USAGE', usage.ru_maxrss, usage.ru_utime + usage.ru_stime, file=sys.stderr)\n"
    "sys.exit(code)"
)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    wall: float  # seconds, interpreter start-up included
    peak_mb: float
    cpu: float  # seconds


def run_ekimo(env: dict[str, str], *args: str) -> Run:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CODE, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if "USAGE" not in done.stderr:
        raise SystemExit(f"ekimo {' '.join(args)} died ({done.returncode}): {done.stderr[-2000:]}")
    rss_kb, cpu = done.stderr.rsplit("USAGE", 1)[1].split()[:2]
    return Run(done.returncode, done.stdout, done.stderr, wall, int(rss_kb) / 1024, float(cpu))


def bearer_token(base: str, username: str, password: str, *, register: bool = True) -> str:
    """A bearer token of the served ekimo at `base`, its account registered first."""
    import httpx

    account = {"username": username, "password": password}
    if register:
        created = httpx.post(f"{base}/users", json=account)
        if created.status_code != 201:
            raise SystemExit(f"could not register ({created.status_code}): {created.text}")
    login = httpx.post(f"{base}/auth", data=account)
    if login.status_code != 200:
        raise SystemExit(f"could not log in ({login.status_code}): {login.text}")
    return str(login.json()["access_token"])
