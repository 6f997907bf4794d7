"""Run `ekimo ...` in a child process that reports its own resource usage.

The child measures itself (getrusage(RUSAGE_SELF)), so other children of the benchmark process,
earlier or still running, never count in its peak memory or CPU time. Python's bytecode cache is
filled first (compileall of ekimo and its packages), as on a user's machine: with
PYTHONDONTWRITEBYTECODE set, every child would otherwise compile everything it imports.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import sysconfig
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


@functools.cache
def _fill_bytecode_cache() -> None:
    packages = sysconfig.get_paths()["purelib"]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", str(ROOT / "ekimo"), packages],
        check=False,
        stdout=subprocess.DEVNULL,
    )


def run_ekimo(env: dict[str, str], *args: str) -> Run:
    _fill_bytecode_cache()
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
