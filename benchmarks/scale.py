"""Scale benchmark: the catalog's reads on 100,000 and on 2,000,000 products, in one run.

    python -m benchmarks scale [--small 100000] [--large 2000000] [--repeat 20]

`ekimo serve --no-worker` (uvicorn) serves a scratch database of --small products, then of
--large; each read is timed over HTTP as a client with a bearer token would make it, the best
of --repeat sequential requests on one keep-alive connection, after a warm-up:

  first page     GET /products?limit=50
  search         GET /products?limit=50&q=Widget%2099
  sort by price  GET /products?limit=50&sort=-price
  pending        GET /products?limit=50&state=pending
  deep page      GET /products?limit=50&sort=-price&cursor=... (after 90% of the catalog)
  sync status    GET /sync/status
  one product    GET /products/{barcode}

followed, for comparison, by the deep page reached by `offset` (which reads every product it
skips: not flat by nature, and not a goal).

Products come from SQL (generate_series): names "<word> <n>" as /work/shared/gen_products.py
makes them (Widget, Gadget, ... and the product's number), prices 0.01 to 999.99, quantities 0
to 5000, one product in a hundred pending sync. Each size is loaded as a bulk load would be:
the catalog's read indexes are dropped (migrating down to before 0007), the rows inserted, the
indexes built again (migrating up), then the table vacuumed and analyzed, as autovacuum would.

Server: TEST_DATABASE_URL, else DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres;
a scratch database is created and dropped. Goal: every read at --large <= 2x its time at --small.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import httpx

from benchmarks.child import bearer_token
from benchmarks.sync import (
    DEFAULT_SERVER,
    PASSWORD,
    ROOT,
    _env,
    _execute,
    _free_port,
    _with_database,
)
from ekimo import db

GOAL_RATIO = 2.0
WARM_UP = 3
# The revision before the catalog's read indexes (0007): migrating down to it drops them.
BEFORE_READ_INDEXES = "0006_access"
DEEP = 0.9  # where the deep page starts, as a share of the catalog (sort -price)
OFFSET_REPEAT = 3
TRIGRAM_INDEX = "SELECT 1 FROM pg_indexes WHERE indexname = 'ix_products_name_trgm'"

# Products first to last (inclusive), deterministic: hashint4 spreads words, prices and times.
INSERT = """
INSERT INTO products (barcode, name, price, quantity, last_updated, version, synced_version,
                      created_at, updated_at)
SELECT (2000000000000 + g)::text,
       (ARRAY['Widget', 'Gadget', 'Bolt', 'Nut', 'Cable', 'Lamp', 'Chair', 'Kettle'])
           [1 + (hashint4(g) & 7)] || ' ' || g,
       ((hashint4(g * 7) & 2147483647) % 99999 + 1) / 100.0,
       (hashint4(g * 13) & 2147483647) % 5001,
       timestamptz '2025-07-01 12:00:00+00'
           + ((hashint4(g * 17) & 2147483647) % 100000) * interval '1 minute',
       1, CASE WHEN g % 100 = 0 THEN 0 ELSE 1 END,
       timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second',
       timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second'
FROM generate_series($1::int, $2::int) g
"""

READS = [
    ("first page", "/products?limit=50"),
    ("search", "/products?limit=50&q=Widget%2099"),
    ("sort by price", "/products?limit=50&sort=-price"),
    ("pending", "/products?limit=50&state=pending"),
    ("deep page", "/products?limit=50&sort=-price&cursor={cursor}"),
    ("sync status", "/sync/status"),
    ("one product", "/products/{barcode}"),
]
OFFSET_READ = ("deep page by offset", "/products?limit=50&sort=-price&offset={offset}")


@dataclass
class Timing:
    best_ms: float
    median_ms: float


@dataclass
class Size:
    products: int
    timings: dict[str, Timing]
    notes: list[str]


async def _fetch(url: str, query: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def _load(url: str, first: int, last: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(INSERT, first, last)
    finally:
        await conn.close()


async def _settle(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM (ANALYZE) products, pending_products")
        await conn.execute("CHECKPOINT")  # its writes would otherwise land during the reads
    finally:
        await conn.close()


def _grow(url: str, first: int, last: int) -> float:
    """Products `first` to `last` added as a bulk load; returns the seconds it took."""
    started = time.perf_counter()
    db.downgrade(url, BEFORE_READ_INDEXES)
    asyncio.run(_load(url, first, last))
    db.upgrade(url)
    asyncio.run(_settle(url))
    return time.perf_counter() - started


@contextlib.contextmanager
def _served(database_url: str) -> Iterator[str]:
    """`ekimo serve --no-worker` on `database_url`; yields its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "ekimo", "serve", "--no-worker", "--port", str(port)],
        env=_env(database_url),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit("ekimo serve exited at start")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("ekimo serve did not answer /health within 60 s")
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _time(client: httpx.Client, path: str, repeat: int, warm_up: int = WARM_UP) -> Timing:
    times: list[float] = []
    for i in range(warm_up + repeat):
        started = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.text[:500]}")
        if i >= warm_up:
            times.append(elapsed * 1000)
    return Timing(min(times), statistics.median(times))


def _measure(base: str, products: int, repeat: int, *, register: bool) -> Size:
    with httpx.Client(base_url=base, timeout=120) as client:
        client.headers["Authorization"] = (
            f"Bearer {bearer_token(base, 'reader', PASSWORD, register=register)}"
        )
        offset = int(products * DEEP)
        # The cursor of the page at `offset` (untimed), for the deep page.
        before = client.get(f"/products?limit=1&sort=-price&offset={offset - 1}").json()
        values = {
            "cursor": before["next"],
            "offset": offset,
            "barcode": 2000000000000 + products // 2,
        }
        timings = {label: _time(client, path.format(**values), repeat) for label, path in READS}
        label, path = OFFSET_READ  # seconds per request at the larger size: a few are enough
        timings[label] = _time(client, path.format(**values), min(repeat, OFFSET_REPEAT), 1)
        notes: list[str] = []
        for label, path in READS[:4]:
            page = client.get(path).json()
            kind = "exact" if page["total_exact"] else "estimate"
            notes.append(f"{label} total {page['total']:,} ({kind})")
        status = client.get("/sync/status").json()
        kind = "exact" if status["pending_exact"] else "estimate"
        notes.append(f"sync status pending {status['pending']:,} ({kind})")
    return Size(products, timings, notes)


def _report(small: Size, large: Size, repeat: int) -> None:
    print(
        f"GET over HTTP (ekimo serve), best of {repeat} sequential requests, ms "
        "(median in brackets)"
    )
    header = f"{small.products:,} products", f"{large.products:,} products"
    print(f"{'read':<20} {header[0]:>22} {header[1]:>22} {'ratio':>7}")
    flat = True
    for label, _ in READS:
        a, b = small.timings[label], large.timings[label]
        ratio = b.best_ms / a.best_ms
        flat = flat and ratio <= GOAL_RATIO
        verdict = "flat" if ratio <= GOAL_RATIO else "NOT FLAT"
        print(
            f"{label:<20} {a.best_ms:>12.1f} ({a.median_ms:>6.1f}) "
            f"{b.best_ms:>12.1f} ({b.median_ms:>6.1f}) {ratio:>6.2f}x {verdict}"
        )
    label = OFFSET_READ[0]
    a, b = small.timings[label], large.timings[label]
    print(
        f"for comparison, not a goal: {label} (offset {DEEP:.0%} of the catalog): "
        f"{a.best_ms:.1f} ms -> {b.best_ms:.1f} ms ({b.best_ms / a.best_ms:.1f}x)"
    )
    for size in (small, large):
        print(f"at {size.products:,}: " + "; ".join(size.notes))
    print(
        f"goal: every read at {large.products:,} products <= {GOAL_RATIO:g}x its time at "
        f"{small.products:,}: {'met' if flat else 'MISSED'}"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scale")
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    if not 100 <= args.small < args.large:
        parser.error("need 100 <= --small < --large")

    server = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    server = server or DEFAULT_SERVER
    name = f"ekimo_bench_scale_{secrets.token_hex(4)}"
    url = _with_database(server, name)
    admin = _with_database(server, "postgres")
    asyncio.run(_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        db.upgrade(url)
        if not asyncio.run(_fetch(url, TRIGRAM_INDEX)):
            print("note: this server has no pg_trgm: the search reads the whole table")
        sizes: list[Size] = []
        loaded = 0
        for products in (args.small, args.large):
            seconds = _grow(url, loaded + 1, products)
            print(f"loaded {products:,} products ({seconds:.0f} s, indexes included)")
            loaded = products
            with _served(url) as base:
                sizes.append(_measure(base, products, args.repeat, register=not sizes))
        _report(sizes[0], sizes[1], args.repeat)
    finally:
        asyncio.run(_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
