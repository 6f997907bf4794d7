"""Sync benchmark: 100,000 pending products pushed to a second ekimo on this machine.

The receiver is `ekimo serve --no-worker` (uvicorn) in a subprocess on a database of its own;
the sender is `ekimo sync --json` in a subprocess, so its peak resident memory is measured
alone (the child reports its own getrusage(RUSAGE_SELF), so earlier children of the same
benchmark process, such as the import benchmark's, do not count). The sender holds a
`receiver` API key of the receiver (`SYNC_API_KEY`), as the README sets up a sync into another
ekimo; `--login` uses the account's name and password instead (a bcrypt check per run).

    python -m benchmarks sync [--rows 100000] [--batch-size N (default: SYNC_BATCH_SIZE's)]
                              [--login]

Server: TEST_DATABASE_URL, else DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres;
two scratch databases are created and dropped. Goals: >= 46,000 rows/s (20x the prototype's
2,300) and <= 150 MB peak RSS in the sender.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from benchmarks.child import run_ekimo
from ekimo import db
from ekimo.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET = "benchmark-secret-" + "x" * 32
PASSWORD = "benchmark password"  # noqa: S105 - a throwaway account on a scratch database
GOAL_ROWS_PER_SECOND = 46_000
GOAL_PEAK_MB = 150

# The products as an import leaves them: each with its pending row.
INSERT = """
WITH inserted AS (
    INSERT INTO products (barcode, name, price, quantity, last_updated, version, created_at,
                          updated_at)
    SELECT lpad(g::text, 13, '0'), 'Benchmark product ' || g, (g % 100000) / 100.0, g % 1000,
           timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second', 1, now(), now()
    FROM generate_series(1, $1) g
    RETURNING id, barcode
)
INSERT INTO pending_products (product_id, barcode, version, synced_version)
SELECT id, barcode, 1, 0 FROM inserted
"""


def _with_database(url: str, name: str) -> str:
    base, _, query = db.libpq_url(url).partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def _execute(url: str, statement: str, *args: Any) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNC_", "EKIMO_"))}
    env.pop("REDIS_URL", None)
    env.update(DATABASE_URL=database_url, SECRET_KEY=SECRET, **extra)
    return env


def _peak_mb_of(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_seconds_of(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _receiver_key(port: int) -> str:
    """A `receiver` API key of the sender's account on the receiver."""
    base = f"http://127.0.0.1:{port}"
    login = httpx.post(f"{base}/auth", data={"username": "sender", "password": PASSWORD})
    token = login.json()["access_token"]
    created = httpx.post(
        f"{base}/api-keys",
        json={"name": "benchmark sender", "role": "receiver"},
        headers={"Authorization": f"Bearer {token}"},
    )
    if created.status_code != 201:
        raise SystemExit(f"could not create the receiver key: {created.text}")
    return str(created.json()["secret"])


def _start_receiver(database_url: str, port: int) -> subprocess.Popen[bytes]:
    receiver = subprocess.Popen(
        [sys.executable, "-m", "ekimo", "serve", "--no-worker", "--port", str(port)],
        env=_env(database_url),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if receiver.poll() is not None:
            raise SystemExit("the receiver (ekimo serve) exited at start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        receiver.kill()
        raise SystemExit("the receiver did not answer /health within 60 s")
    created = httpx.post(
        f"http://127.0.0.1:{port}/users", json={"username": "sender", "password": PASSWORD}
    )
    if created.status_code != 201:
        receiver.kill()
        raise SystemExit(f"could not create the receiver's account: {created.text}")
    return receiver


def _sync(
    database_url: str, port: int, batch_size: int, key: str | None
) -> tuple[dict[str, Any], float, float, float]:
    """(summary, wall seconds, peak RSS in MB, CPU seconds) of one `ekimo sync` process."""
    credentials = (
        {"SYNC_API_KEY": key} if key else {"SYNC_USERNAME": "sender", "SYNC_PASSWORD": PASSWORD}
    )
    env = _env(
        database_url,
        SYNC_BASE_URL=f"http://127.0.0.1:{port}",
        SYNC_BATCH_SIZE=str(batch_size),
        **credentials,
    )
    run = run_ekimo(env, "sync", "--json")
    if not run.stdout.strip():
        raise SystemExit(f"ekimo sync printed nothing (exit {run.returncode}): {run.stderr}")
    return json.loads(run.stdout), run.wall, run.peak_mb, run.cpu


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks sync")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=Settings().sync_batch_size)
    parser.add_argument(
        "--login", action="store_true", help="SYNC_USERNAME/SYNC_PASSWORD, not a receiver key"
    )
    args = parser.parse_args(argv)

    server = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    server = server or DEFAULT_SERVER
    suffix = secrets.token_hex(4)
    sender_db = _with_database(server, f"ekimo_bench_tx_{suffix}")
    receiver_db = _with_database(server, f"ekimo_bench_rx_{suffix}")
    admin = _with_database(server, "postgres")
    for url in (sender_db, receiver_db):
        asyncio.run(_execute(admin, f'CREATE DATABASE "{url.rsplit("/", 1)[1].split("?")[0]}"'))
    receiver: subprocess.Popen[bytes] | None = None
    try:
        for url in (sender_db, receiver_db):
            db.upgrade(url)
        asyncio.run(_execute(sender_db, INSERT, args.rows))
        port = _free_port()
        receiver = _start_receiver(receiver_db, port)
        key = None if args.login else _receiver_key(port)

        receiver_cpu_before = _cpu_seconds_of(receiver.pid)
        summary, wall, peak_mb, sender_cpu = _sync(sender_db, port, args.batch_size, key)
        receiver_cpu_after = _cpu_seconds_of(receiver.pid)
        receiver_peak = _peak_mb_of(receiver.pid)
        again, again_wall, _, _ = _sync(sender_db, port, args.batch_size, key)

        run_seconds = (summary["duration_ms"] or 1) / 1000
        rate = summary["acknowledged"] / run_seconds
        credential = "name and password (a login per run)" if args.login else "a receiver key"
        print(f"rows: {args.rows}, batch size: {args.batch_size}, credential: {credential}")
        print(
            f"sync run: {summary['status']}, {summary['acknowledged']} acknowledged in "
            f"{run_seconds:.2f} s -> {rate:,.0f} rows/s "
            f"(goal >= {GOAL_ROWS_PER_SECOND:,}: "
            f"{'met' if rate >= GOAL_ROWS_PER_SECOND else 'MISSED'})"
        )
        print(
            f"whole `ekimo sync` process: {wall:.2f} s wall -> "
            f"{summary['acknowledged'] / wall:,.0f} rows/s including interpreter start"
        )
        print(
            f"sender peak RSS: {peak_mb:.0f} MB "
            f"(goal <= {GOAL_PEAK_MB}: {'met' if peak_mb <= GOAL_PEAK_MB else 'MISSED'})"
        )
        print(f"sender CPU (whole process): {sender_cpu:.2f} s")
        if receiver_peak is not None:
            print(f"receiver peak RSS: {receiver_peak:.0f} MB")
        if receiver_cpu_before is not None and receiver_cpu_after is not None:
            print(f"receiver CPU during the run: {receiver_cpu_after - receiver_cpu_before:.2f} s")
        print(
            f"next run (nothing pending): {again['status']}, pending {again['pending_at_start']}, "
            f"{again['duration_ms']} ms run, {again_wall:.2f} s wall"
        )
    finally:
        if receiver is not None:
            receiver.terminate()
            try:
                receiver.wait(10)
            except subprocess.TimeoutExpired:
                receiver.kill()
        for url in (sender_db, receiver_db):
            name = url.rsplit("/", 1)[1].split("?")[0]
            asyncio.run(_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
