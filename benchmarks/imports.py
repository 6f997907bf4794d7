"""Import benchmark: ekimo's import against `psql \\copy` of the same file, in the same run.

Baselines: `\\copy` into a copy of the products table (the goals' reference), and into a
minimal table (the file's columns, unique barcode). Cases: a CSV imported fresh, re-imported
unchanged, re-imported with 10% of rows changed; an XLSX against a bare python-calamine read
of the same file. Each ekimo import runs as `ekimo import --json` in a subprocess, so its peak
resident memory is measured alone.

    python -m benchmarks import [--rows 1000000] [--xlsx-rows 100000]

Server: TEST_DATABASE_URL, else DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres;
a scratch database is created and dropped. Files go to bench-data/ (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from benchmarks.child import run_ekimo
from ekimo import db

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data"
GEN = ROOT.parent / "shared" / "gen_products.py"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"

# Two baselines, each the best of two `\copy` runs of the same file into an empty table:
# "products" is a copy of the products table (its columns, constraints, indexes and defaults;
# created_at/updated_at default to now() as the file lacks them): what loading the catalog
# costs PostgreSQL by itself, and the reference of the goals. "minimal" is the file's five
# columns with a unique barcode: what COPY costs with nothing else to maintain.
BASELINE_TABLES = {
    "products": (
        "CREATE TABLE baseline (LIKE products INCLUDING ALL);"
        " ALTER TABLE baseline ALTER created_at SET DEFAULT now(),"
        " ALTER updated_at SET DEFAULT now()"
    ),
    "minimal": (
        "CREATE TABLE baseline (name text, price numeric(14,2), quantity numeric(15,3),"
        " last_updated timestamptz, barcode varchar(14) UNIQUE)"
    ),
}


def _with_database(url: str, name: str) -> str:
    base, _, query = db.libpq_url(url).partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_with_database(url, "postgres"))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _generate(rows: int, path: Path, *extra: str) -> Path:
    if not path.exists():
        subprocess.run([sys.executable, str(GEN), str(rows), str(path), *extra], check=True)
    return path


def _changed_copy(source: Path, target: Path) -> Path:
    """The same file with every tenth row's price changed."""
    if target.exists():
        return target
    with source.open(newline="") as src, target.open("w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow(next(reader))
        for i, row in enumerate(reader):
            if i % 10 == 0:
                row[1] = f"{float(row[1]) + 1:.2f}"
            writer.writerow(row)
    return target


def _psql_copy(url: str, path: Path, table: str) -> float:
    r"""Seconds of the faster of two `\copy` runs of `path` into an empty baseline table."""
    with path.open() as file:
        columns = file.readline().strip()  # the file's header names the table's columns
    times: list[float] = []
    for _ in range(2):
        subprocess.run(
            ["psql", url, "-qc", "DROP TABLE IF EXISTS baseline", "-c", BASELINE_TABLES[table]],
            check=True,
        )
        subprocess.run(["psql", url, "-qc", "CHECKPOINT"], check=True)
        started = time.perf_counter()
        subprocess.run(
            ["psql", url, "-qc", f"\\copy baseline ({columns}) FROM '{path}' (FORMAT csv, HEADER)"],
            check=True,
        )
        times.append(time.perf_counter() - started)
    subprocess.run(["psql", url, "-qc", "DROP TABLE baseline"], check=True)
    return min(times)


def _ekimo_import(env: dict[str, str], path: Path) -> tuple[float, float, dict[str, object]]:
    """(seconds, peak RSS in MB, report) of `ekimo import --json` in a child process."""
    run = run_ekimo(env, "import", str(path), "--json")
    if run.returncode != 0:
        raise SystemExit(f"ekimo import failed ({run.returncode}): {run.stderr[-2000:]}")
    report = json.loads(run.stdout)
    # The import's own time (the report's duration_ms); process start-up is shown apart.
    seconds = report["duration_ms"] / 1000
    print(f"  (ekimo import process: {run.wall:.2f} s wall, including start-up)")
    return seconds, run.peak_mb, report


def _calamine_read(path: Path) -> float:
    from python_calamine import CalamineWorkbook

    started = time.perf_counter()
    sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
    for _ in sheet.iter_rows():
        pass
    return time.perf_counter() - started


def _line(
    label: str, rows: int, ours: float, base: float, rss: float | None, goal: str, also: str = ""
) -> None:
    ratio = base / ours
    memory = f"{rss:6.0f} MB" if rss is not None else "       -"
    print(
        f"{label:<28} {rows / ours:>10,.0f} rows/s  {ours:7.2f} s  baseline {base:6.2f} s  "
        f"ratio {ratio:4.2f}x{also}  peak RSS {memory}  goal {goal}"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks import")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    server = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    DATA.mkdir(exist_ok=True)
    fresh = _generate(args.rows, DATA / f"products-{args.rows}.csv")
    changed = _changed_copy(fresh, DATA / f"products-{args.rows}-changed.csv")
    xlsx = _generate(args.xlsx_rows, DATA / f"products-{args.xlsx_rows}.xlsx")

    name = f"ekimo_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = _with_database(server, name)
    try:
        db.upgrade(url)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNC_", "EKIMO_"))}
        env.update(DATABASE_URL=url, SECRET_KEY="benchmark-" + "x" * 40)
        env.pop("REDIS_URL", None)
        psql = _psql_copy(url, fresh, "products")
        minimal = _psql_copy(url, fresh, "minimal")
        print(
            f"psql \\copy of {args.rows:,} rows: {psql:.2f} s into a copy of the products table "
            f"(the baseline below), {minimal:.2f} s into a minimal table "
            "(5 columns, unique barcode)"
        )
        for label, path, goal in (
            ("CSV fresh", fresh, ">= 0.5x"),
            ("CSV re-import unchanged", fresh, ">= 1.0x"),
            ("CSV re-import 10% changed", changed, "-"),
        ):
            seconds, rss, report = _ekimo_import(env, path)
            also = f" (minimal {minimal / seconds:4.2f}x)"
            _line(label, args.rows, seconds, psql, rss, goal, also)
            counts = {k: report[k] for k in ("created", "updated", "unchanged", "rejected")}
            print(f"{'':<28} {counts}")
        # Both sides the best of three: a single read of 0.5 s varies by a third here.
        bare = min(_calamine_read(xlsx) for _ in range(3))
        runs: list[tuple[float, float]] = []
        for _ in range(3):
            # As before each `\copy`: no checkpoint of the CSV runs' WAL in the middle.
            subprocess.run(
                ["psql", url, "-qc", "TRUNCATE products", "-c", "CHECKPOINT"], check=True
            )
            seconds, rss, _ = _ekimo_import(env, xlsx)
            runs.append((seconds, rss))
        seconds, rss = min(runs)[0], max(rss for _, rss in runs)
        _line(f"XLSX {args.xlsx_rows:,} rows fresh", args.xlsx_rows, seconds, bare, rss, ">= 0.4x")
        print(
            "(XLSX: the fastest of three imports, each into an empty catalog: "
            + ", ".join(f"{s:.2f} s" for s, _ in runs)
            + "; baseline: the fastest of three bare python-calamine reads of the same file)"
        )
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"benchmark process peak RSS {own} MB")
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
