"""A PostgreSQL cluster of the fault tests' own, which they may stop, start and restart as a
failover or an operator does (`pg_ctl restart -m fast` drops every connection at once).

One cluster per test session (`initdb` on a free port of 127.0.0.1, in a temporary directory),
stopped and removed at the end; each test gets a fresh database in it, migrated (a copy of a
template migrated once). As root the server runs as the `postgres` user (PostgreSQL refuses
root); as anyone else, as that user. Without the binaries (or, as root, without the `postgres`
user) the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ekimo import db
from tests.faults.ekimo_process import free_port

PG_TIMEOUT = 60.0
TEMPLATE = "ekimo_faults_template"


def _bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with pg_ctl (Debian's layout), or the
    directory of a pg_ctl on PATH."""
    found = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "pg_ctl").is_file() and (path / "initdb").is_file()
    ]
    if found:
        return max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)])
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path and shutil.which("initdb") else None


class Cluster:
    """A running PostgreSQL on 127.0.0.1:`port`, data in `root`/data, its log in `root`/log."""

    def __init__(self, bindir: Path, root: Path, as_owner: list[str]) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "log"
        self.port = free_port()
        self._as_owner = as_owner  # e.g. ["runuser", "-u", "postgres", "--"]
        self.server_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._template_ready = False

    def _pg(self, tool: str, *args: str) -> None:
        command = [*self._as_owner, str(self.bindir / tool), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PG_TIMEOUT, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.is_file() else ""
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n{log}"
            )

    def init(self) -> None:
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N")

    def start(self) -> None:
        options = (
            f"-k {self.root} -c listen_addresses=127.0.0.1 -c port={self.port} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.log), "-o", options, "start")

    def stop(self) -> None:
        """Fast shutdown: every session is ended at once, open transactions rolled back."""
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    def restart(self) -> None:
        """Stop fast (every connection dropped, as in a failover) and start again; returns
        once the server accepts connections."""
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "-l", str(self.log), "restart")

    def kill(self) -> None:
        """Last resort at teardown: SIGQUIT to the postmaster (immediate shutdown)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def admin(self, *statements: str) -> None:
        with psycopg.connect(self.server_url, autocommit=True, connect_timeout=10) as conn:
            for statement in statements:
                conn.execute(statement.encode())

    @contextlib.contextmanager
    def database(self, prefix: str = "ekimo_fault") -> Iterator[str]:
        """A new database, migrated to head, dropped on exit; yields its URL."""
        if not self._template_ready:
            self.admin(f'CREATE DATABASE "{TEMPLATE}"')
            db.upgrade(self.url(TEMPLATE))
            self._template_ready = True
        name = f"{prefix}_{secrets.token_hex(4)}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        try:
            yield self.url(name)
        finally:
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _owner_prefix() -> list[str]:
    """How to run the PostgreSQL tools: as `postgres` when we are root, else as ourselves."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without `runuser` to run PostgreSQL as `postgres`")
    return [runuser, "-u", "postgres", "--"]


@pytest.fixture(scope="session")
def own_cluster() -> Iterator[Cluster]:
    """The session's restartable PostgreSQL."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin")
    as_owner = _owner_prefix()
    root = Path(tempfile.mkdtemp(prefix="ekimo-faults-pg-"))
    if as_owner:
        postgres = pwd.getpwnam("postgres")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)
    cluster = Cluster(bindir, root, as_owner)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        except Exception:
            cluster.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def own_database(own_cluster: Cluster) -> Iterator[str]:
    """A fresh migrated database in the session's cluster, for one test; its URL."""
    with own_cluster.database() as url:
        yield url
