"""Load benchmark: wrk against ekimo's reads, authenticated, and against a bare Litestar +
asyncpg app answering the same single-product query (`benchmarks/bare_app.py`), in one run.

    python -m benchmarks load [--products 100000] [--duration 10] [--connections 32]
                              [--threads 2] [--workers 1] [--timeout 10]
                              [--import-rows 600000] [--no-import]

Needs wrk (`apt-get install wrk`). Server: TEST_DATABASE_URL, else DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/postgres; a scratch database is created and dropped.

The catalog (`--products` rows, SQL generate_series) is served by `ekimo serve --no-worker
--workers N` and the bare app (uvicorn, N processes) on the same database. Each case is one wrk
run of `--duration` seconds with `--connections` connections, every request carrying a bearer
token of an account registered through POST /users and POST /auth:

  one product  GET /products/{barcode}, a random barcode of the catalog per request
  list page    GET /products?limit=50
  search page  GET /products?limit=50&q=product%20NNN (a random NNN; 111 names match at 100k)

Each row gives the server's CPU time over the run (100% = one core) and per request, and the
database sessions opened during the run (pg_stat_database.sessions: a pool that churns).

Then, unless --no-import, the same three cases while an import runs, over HTTP on the served
ekimo (PUT /products, multipart field `file`, answered when the import is done): a CSV of
`--import-rows` new products (/work/shared/gen_products.py, cached in bench-data/). An import
is one transaction, so the reads see the idle runs' catalog until it commits; if it ends before
the runs do, imports changing every one of its rows follow back to back (a second file, seed 2),
and the report says from when the catalog was bigger. After the runs, the import in flight gets
up to 45 s to end (its outcome is printed), then ekimo stops and rolls it back. For each case
the report gives the share of the run an import was in flight, and what its database connection
was running (sampled five times a second: the import's phases the run overlapped).

Goals (reported, not asserted): one product >= 0.5x the bare app's requests/s and p99 <= 2x its
p99; during the import, every case >= 1/3 of its idle requests/s with 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from benchmarks.child import bearer_token
from benchmarks.imports import DATA, _generate
from benchmarks.sync import (
    DEFAULT_SERVER,
    INSERT,
    PASSWORD,
    ROOT,
    _env,
    _execute,
    _free_port,
    _with_database,
)
from ekimo import db

CASES = {"one": "one product", "list": "list page", "search": "search page"}
GOAL_BARE_RATE = 0.5  # ekimo's one-product requests/s against the bare app's
GOAL_BARE_P99 = 2.0  # ekimo's one-product p99 against the bare app's
GOAL_IMPORT_RATE = 1 / 3  # requests/s during the import against idle
WARM_UP_SECONDS = 2
# After the last wrk run, how long the import in flight may take to end before ekimo stops
# (which rolls it back): its outcome under load is worth a wait, but not an unbounded one.
IMPORT_WAIT_SECONDS = 45
USERNAME = "loader"

# %013d: the barcodes of benchmarks.sync.INSERT (lpad(g, 13, '0')).
LUA = """
local mode = "__MODE__"
local products = __PRODUCTS__
local threads = 0
wrk.headers["Authorization"] = "Bearer __TOKEN__"

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  math.randomseed(os.time() + 7919 * (thread_number or 0))
end

function request()
  local path
  if mode == "one" then
    path = string.format("/products/%013d", math.random(1, products))
  elseif mode == "search" then
    path = "/products?limit=50&q=product%20" .. math.random(100, 999)
  else
    path = "/products?limit=50"
  end
  return wrk.format(nil, path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"connect\\": %d, \\"read\\": %d, " ..
    "\\"write\\": %d, \\"status\\": %d, \\"timeout\\": %d, \\"p50_us\\": %d, " ..
    "\\"p99_us\\": %d, \\"max_us\\": %d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""

# A client backend of the scratch database with a transaction id: the import writing.
IMPORT_WRITING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend' AND backend_xid IS NOT NULL
"""


@dataclass
class Result:
    label: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    server_cpu: float | None  # the server's CPU seconds per wall second (1.0 = one core)
    connections: int  # database sessions opened during the run (pool churn), about
    window: tuple[float, float]  # monotonic start and end of the wrk run

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base: str
    log: Path


@dataclass
class ImportRun:
    file: str
    started: float
    ended: float
    status: int
    report: dict[str, Any]

    def summary(self) -> str:
        counts = ", ".join(
            f"{k} {self.report[k]:,}"
            for k in ("created", "updated", "unchanged", "rejected")
            if self.report.get(k)
        )
        outcome = self.report.get("status", "?") if self.status == 200 else f"HTTP {self.status}"
        return f"{self.file}: {outcome}, {counts or 'nothing'} in {self.ended - self.started:.1f} s"


# -- processes --------------------------------------------------------------------------------


def _cpu_seconds(root: int) -> float | None:
    """CPU seconds (user + system) of `root` and its descendants (uvicorn's workers)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    if root not in times:
        return None
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def _start(name: str, command: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited at start ({process.returncode}):\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.base}/health", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{name} did not answer /health within 60 s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# -- database -----------------------------------------------------------------------------------


async def _fill(url: str, products: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(INSERT, products)
        await conn.execute("VACUUM (ANALYZE) products, pending_products")
    finally:
        await conn.close()


async def _wait_until_writing(url: str, importer: Importer) -> float:
    """Seconds until the first import writes (or ends: then the caller sees it did)."""
    timeout = 120
    started = time.monotonic()
    conn = await asyncpg.connect(url)
    try:
        while time.monotonic() - started < timeout:
            if importer.runs or await conn.fetchval(IMPORT_WRITING):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise SystemExit(f"the import did not start writing within {timeout:.0f} s")


# A client backend of the scratch database running a statement outside a writing transaction:
# a read (the import's statements run in a transaction with an id).
READS_RUNNING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend' AND state = 'active' AND backend_xid IS NULL
"""


async def _drain(url: str, limit: float = 90) -> float:
    """Seconds until no read runs in the database for 0.5 s: requests wrk gave up on (a
    timeout, or the run's end) still run in the server and would slow the next case."""
    started = time.monotonic()
    conn = await asyncpg.connect(url)
    try:
        quiet = 0
        while quiet < 5 and time.monotonic() - started < limit:
            quiet = quiet + 1 if await conn.fetchval(READS_RUNNING) == 0 else 0
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return time.monotonic() - started - 0.5


async def _sessions(url: str) -> int:
    """Sessions opened on the database so far (as far as the backends have reported them)."""
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            )
        )
    finally:
        await conn.close()


# -- HTTP ---------------------------------------------------------------------------------------


def _same_answer(ekimo: str, bare: str, token: str) -> str:
    path = "/products/" + "1".zfill(13)
    headers = {"Authorization": f"Bearer {token}"}
    ours = httpx.get(ekimo + path, headers=headers)
    theirs = httpx.get(bare + path, headers=headers)
    if ours.status_code != 200 or theirs.status_code != 200:
        raise SystemExit(f"GET {path}: ekimo {ours.status_code}, bare app {theirs.status_code}")
    a, b = ours.json(), theirs.json()
    if a == b:
        return f"identical JSON ({len(ours.content)} bytes)"
    differing = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return f"DIFFERENT JSON in {', '.join(differing)}: ekimo {a}, bare {b}"


def _import(base: str, token: str, path: Path) -> ImportRun:
    started = time.monotonic()
    try:
        with path.open("rb") as file:
            answer = httpx.put(
                f"{base}/products",
                files={"file": (path.name, file, "text/csv")},
                headers={"Authorization": f"Bearer {token}"},
                timeout=900,
            )
        status = answer.status_code
        try:
            report = answer.json()
        except ValueError:
            report = {"status": answer.text[:200]}
    except httpx.HTTPError as exc:
        status, report = 0, {"status": f"{type(exc).__name__}: {exc}"}
    return ImportRun(path.name, started, time.monotonic(), status, report)


class Importer(threading.Thread):
    """Imports the files in turn, back to back, until told to stop (the one running ends)."""

    def __init__(self, base: str, token: str, files: list[Path]) -> None:
        super().__init__(name="importer", daemon=True)
        self.base, self.token, self.files = base, token, files
        self.stopping = threading.Event()
        self.runs: list[ImportRun] = []
        self.began = time.monotonic()

    def run(self) -> None:
        turn = 0
        while not self.stopping.is_set():
            self.runs.append(_import(self.base, self.token, self.files[turn % len(self.files)]))
            turn += 1

    def coverage(self, window: tuple[float, float]) -> float:
        """The share of `window` during which an import was in flight."""
        start, end = window
        spans = [(r.started, r.ended) for r in self.runs]
        if self.is_alive():
            spans.append((self.runs[-1].ended if self.runs else self.began, time.monotonic()))
        covered = sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)
        return covered / (end - start)


# What the import's connections (client backends of the scratch database with a transaction
# id) run: a statement, else `idle in transaction` (ekimo prepares the next batch, or the
# connection holds a lock while another one writes).
IMPORT_STATEMENT = """
SELECT CASE WHEN state = 'active' THEN query ELSE state END
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend' AND backend_xid IS NOT NULL
ORDER BY state = 'active' DESC, xact_start
LIMIT 1
"""


class Watch(threading.Thread):
    """Samples what the import's connection runs, five times a second."""

    def __init__(self, url: str) -> None:
        super().__init__(name="import-watch", daemon=True)
        self.url = url
        self.stopping = threading.Event()
        self.samples: list[tuple[float, str]] = []

    def run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while not self.stopping.is_set():
                what = await conn.fetchval(IMPORT_STATEMENT)
                if what is None:
                    what = "no write transaction (upload, start)"
                else:
                    what = " ".join(str(what).split()[:4])[:44]
                self.samples.append((time.monotonic(), what))
                await asyncio.sleep(0.2)
        finally:
            await conn.close()

    def summary(self, window: tuple[float, float]) -> str:
        seen = Counter(what for at, what in self.samples if window[0] <= at <= window[1])
        total = sum(seen.values()) or 1
        return ", ".join(f"{what} {n / total:.0%}" for what, n in seen.most_common(4))


# -- wrk ----------------------------------------------------------------------------------------


@dataclass
class Wrk:
    binary: str
    database_url: str
    scripts: Path
    token: str
    products: int
    duration: float
    connections: int
    threads: int
    timeout: float

    def script(self, mode: str) -> Path:
        path = self.scripts / f"{mode}.lua"
        if not path.exists():
            text = LUA.replace("__MODE__", mode).replace("__PRODUCTS__", str(self.products))
            path.write_text(text.replace("__TOKEN__", self.token))
        return path

    def run(self, server: Server, mode: str, label: str, seconds: float | None = None) -> Result:
        seconds = seconds or self.duration
        command = [
            self.binary,
            f"--threads={self.threads}",
            f"--connections={self.connections}",
            f"--duration={seconds:g}s",
            f"--timeout={self.timeout:g}s",
            f"--script={self.script(mode)}",
            server.base,
        ]
        sessions_before = asyncio.run(_sessions(self.database_url))
        cpu_before = _cpu_seconds(server.process.pid)
        started = time.monotonic()
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
        ended = time.monotonic()
        cpu_after = _cpu_seconds(server.process.pid)
        lines = [line for line in done.stdout.splitlines() if line.startswith("WRK_JSON ")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
        figures = json.loads(lines[-1].removeprefix("WRK_JSON "))
        cpu = None
        if cpu_before is not None and cpu_after is not None:
            cpu = (cpu_after - cpu_before) / (ended - started)
        result = Result(
            label=label,
            requests=figures["requests"],
            seconds=figures["duration_us"] / 1e6,
            p50_ms=figures["p50_us"] / 1000,
            p99_ms=figures["p99_us"] / 1000,
            max_ms=figures["max_us"] / 1000,
            non_2xx=figures["status"],
            socket_errors=sum(figures[k] for k in ("connect", "read", "write", "timeout")),
            server_cpu=cpu,
            connections=0,
            window=(started, ended),
        )
        busy = asyncio.run(_drain(self.database_url))
        # Less this benchmark's own two (the count before, the drain's).
        opened = asyncio.run(_sessions(self.database_url)) - sessions_before - 2
        result.connections = max(0, opened)
        print(f"  {_row(result)}", flush=True)
        if busy > 0.5:
            print(f"    (the server still ran reads for {busy:.1f} s after wrk ended)", flush=True)
        return result


# -- report -------------------------------------------------------------------------------------

# srv CPU: the server process's CPU time over the run's wall time (100% = one core busy);
# CPU ms/req: its CPU time per answered request; DB conns: sessions the server opened.
HEADER = (
    f"{'case':<32} {'req/s':>7} {'requests':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
    f"{'non-2xx':>7} {'socket':>6} {'srv CPU':>7} {'CPU ms/req':>10} {'DB conns':>8}  ratio"
)


def _row(result: Result, ratio: str = "") -> str:
    cpu = per_request = "-"
    if result.server_cpu is not None:
        cpu = f"{result.server_cpu:.0%}"
        if result.requests:
            per_request = f"{result.server_cpu * result.seconds / result.requests * 1000:.2f}"
    rate = f"{result.rate:,.0f}" if result.rate >= 100 else f"{result.rate:.1f}"
    return (
        f"{result.label:<32} {rate:>7} {result.requests:>8,} {result.p50_ms:>7.1f} "
        f"{result.p99_ms:>7.1f} {result.max_ms:>7.0f} {result.non_2xx:>7} "
        f"{result.socket_errors:>6} {cpu:>7} {per_request:>10} {result.connections:>8}  {ratio}"
    ).rstrip()


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _report(
    idle: dict[str, Result], bare: Result, during: dict[str, Result], notes: dict[str, str]
) -> None:
    print()
    print(HEADER)
    one = idle["one"]
    print(_row(one, f"{one.rate / bare.rate:.2f}x bare req/s, p99 {one.p99_ms / bare.p99_ms:.1f}x"))
    print(_row(bare, "1.00x"))
    for mode in ("list", "search"):
        print(_row(idle[mode]))
    for mode, result in during.items():
        print(_row(result, f"{result.rate / idle[mode].rate:.2f}x idle"))
    for mode, note in notes.items():
        print(f"  {CASES[mode]}, during import: {note}")
    print()
    rate, p99 = one.rate / bare.rate, one.p99_ms / bare.p99_ms
    print(
        f"goal one product >= {GOAL_BARE_RATE}x the bare app's req/s: {rate:.2f}x, "
        f"{_met(rate >= GOAL_BARE_RATE)}; p99 <= {GOAL_BARE_P99:g}x the bare app's: {p99:.1f}x, "
        f"{_met(p99 <= GOAL_BARE_P99)}"
    )
    for mode, result in during.items():
        ratio = result.rate / idle[mode].rate
        errors = result.non_2xx + result.socket_errors
        ok = ratio >= GOAL_IMPORT_RATE and errors == 0
        print(
            f"goal {CASES[mode]} during the import >= 1/3 of idle with 0 errors: "
            f"{ratio:.2f}x, {errors} errors, {_met(ok)}"
        )
    if not during:
        print("during the import: not measured (--no-import)")


def _import_phase(
    bench: Wrk, ekimo: Server, url: str, token: str, files: list[Path], catalog: int, rows: int
) -> tuple[dict[str, Result], dict[str, str]]:
    """The three cases while an import runs: the first creates `rows` products (the catalog
    grows when it commits, at its end); if it ends before the runs do, the next ones change
    every row of it (the files in turn), so an import is always in flight."""
    importer = Importer(ekimo.base, token, files)
    watch = Watch(url)
    watch.start()
    importer.start()
    try:
        waited = asyncio.run(_wait_until_writing(url, importer))
        print(f"  (PUT /products of {rows:,} new products; writing after {waited:.1f} s)")
        during: dict[str, Result] = {}
        notes: dict[str, str] = {}
        for mode, label in CASES.items():
            result = during[mode] = bench.run(ekimo, mode, f"{label}, during import")
            note = f"import in flight {importer.coverage(result.window):.0%} of the run"
            first = importer.runs[0] if importer.runs else None
            if first is not None and first.ended < result.window[1]:
                into = max(0.0, first.ended - result.window[0])
                note += (
                    f"; the first import ended {into:.0f} s into it: {catalog + rows:,} "
                    "products from then, against an idle run on fewer"
                )
            notes[mode] = f"{note}; the import's connection: {watch.summary(result.window)}"
        importer.stopping.set()
        ended = time.monotonic()
        importer.join(IMPORT_WAIT_SECONDS)
        for run in importer.runs:
            print(f"  import under load: {run.summary()}")
        if importer.is_alive():
            began = importer.runs[-1].ended if importer.runs else importer.began
            print(
                f"  import under load: still running {time.monotonic() - began:.0f} s in, "
                f"{IMPORT_WAIT_SECONDS} s after the last wrk run: not waited for longer "
                "(rolled back when ekimo stops)"
            )
        elif importer.runs:
            waited_for = max(0.0, importer.runs[-1].ended - ended)
            print(f"  (its end was waited for {waited_for:.0f} s after the last wrk run)")
        failed = [r for r in importer.runs if r.status != 200]
        if failed:
            print(f"  {len(failed)} import(s) FAILED under load")
        return during, notes
    finally:
        importer.stopping.set()
        watch.stopping.set()
        watch.join(5)


# -- main ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _scratch_database(server: str) -> Iterator[str]:
    name = f"ekimo_bench_load_{secrets.token_hex(4)}"
    admin = _with_database(server, "postgres")
    asyncio.run(_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(server, name)
    finally:
        asyncio.run(_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks load")
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes of ekimo serve and of the bare app"
    )
    parser.add_argument("--timeout", type=float, default=10, help="wrk's request timeout, s")
    parser.add_argument("--import-rows", type=int, default=600_000)
    parser.add_argument("--no-import", action="store_true", help="skip the import phase")
    args = parser.parse_args(argv)

    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "wrk is missing: the load benchmark drives it. Install it (`apt-get install wrk`) "
            "and run again.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    files: list[Path] = []
    if not args.no_import:
        DATA.mkdir(exist_ok=True)
        rows = args.import_rows
        files = [
            _generate(rows, DATA / f"products-{rows}.csv"),
            _generate(rows, DATA / f"products-{rows}-seed2.csv", "--seed", "2"),
        ]
    server_url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    with _scratch_database(server_url or DEFAULT_SERVER) as url:
        _run(args, wrk, url, files)


def _run(args: argparse.Namespace, wrk: str, url: str, files: list[Path]) -> None:
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="ekimo-load-") as scratch:
        try:
            db.upgrade(url)
            started = time.monotonic()
            asyncio.run(_fill(url, args.products))
            filled = time.monotonic() - started
            # A short grace: an import still running at the end is rolled back at once.
            env = _env(url, MAX_UPLOAD_MB="1024", SHUTDOWN_GRACE_SECONDS="1")
            env.pop("PYTHONDONTWRITEBYTECODE", None)  # the bytecode cache: a faster start
            env.pop("WEB_CONCURRENCY", None)
            ekimo_port, bare_port = _free_port(), _free_port()
            workers = ["--workers", str(args.workers)]
            serve = [sys.executable, "-m", "ekimo", "serve", "--no-worker", *workers]
            ekimo = _start(
                "ekimo serve",
                [*serve, "--port", str(ekimo_port)],
                env,
                ekimo_port,
                Path(scratch) / "ekimo.log",
            )
            servers.append(ekimo)
            uvicorn = [sys.executable, "-m", "uvicorn", "benchmarks.bare_app:app"]
            uvicorn += ["--no-access-log", "--log-level", "warning"]
            uvicorn += workers if args.workers > 1 else []
            bare = _start(
                "the bare app",
                [*uvicorn, "--port", str(bare_port)],
                env,
                bare_port,
                Path(scratch) / "bare.log",
            )
            servers.append(bare)
            token = bearer_token(ekimo.base, USERNAME, PASSWORD)
            load = os.getloadavg()
            print(
                f"catalog: {args.products:,} products ({filled:.1f} s); ekimo and the bare app: "
                f"{args.workers} process(es) each; wrk: {args.connections} connections, "
                f"{args.threads} threads, {args.duration:g} s per case; "
                f"load average before: {load[0]:.2f} on {os.cpu_count()} CPUs"
            )
            same = _same_answer(ekimo.base, bare.base, token)
            print(f"GET /products/{{barcode}}, ekimo and the bare app: {same}")
            bench = Wrk(
                wrk,
                url,
                Path(scratch),
                token,
                args.products,
                args.duration,
                args.connections,
                args.threads,
                args.timeout,
            )
            # Warm-up (not reported): connection pools grown, statements prepared.
            for server in (ekimo, bare):
                warm_up = [wrk, f"-t{args.threads}", f"-c{args.connections}"]
                warm_up.append(f"-d{WARM_UP_SECONDS}s")
                subprocess.run(
                    [*warm_up, f"-s{bench.script('one')}", server.base],
                    capture_output=True,
                    check=False,
                )
            print(HEADER)
            idle: dict[str, Result] = {}
            idle["one"] = bench.run(ekimo, "one", "one product")
            # Right after ekimo's: the ratio is least disturbed by what else the machine does.
            bare_result = bench.run(bare, "one", "bare app: one product")
            for mode in ("list", "search"):
                idle[mode] = bench.run(ekimo, mode, CASES[mode])
            during: dict[str, Result] = {}
            notes: dict[str, str] = {}
            if files:
                during, notes = _import_phase(
                    bench, ekimo, url, token, files, args.products, args.import_rows
                )
            _report(idle, bare_result, during, notes)
            after = os.getloadavg()[0]
            print(f"load average at the end: {after:.2f} on {os.cpu_count()} CPUs")
        except BaseException:
            for server in servers:
                print(f"--- {server.name} log (tail):\n{_tail(server.log)}", file=sys.stderr)
            raise
        finally:
            for server in servers:
                _stop(server)
