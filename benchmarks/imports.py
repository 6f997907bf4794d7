"""Import benchmark: ekimo's import against `psql \\copy` of the same file, in the same run.

Baselines: `\\copy` into a copy of the products table (the goals' reference), and into a
minimal table (the file's columns, unique barcode). Cases: a CSV imported fresh, re-imported
unchanged, re-imported with 10% of rows changed; an XLSX into an empty catalog and again,
each against a bare python-calamine read of the same file, both timed as whole processes as a
user runs them; a one-row CSV (the command's fixed cost). Each ekimo import runs as `ekimo
import --json` in a subprocess, so its peak resident memory is measured alone.

    python -m benchmarks import [--rows 1000000] [--xlsx-rows 100000] [--pairs 5]

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
import statistics
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
    """(wall seconds, peak RSS in MB, report) of `ekimo import --json` in a child process."""
    run = run_ekimo(env, "import", str(path), "--json")
    if run.returncode != 0:
        raise SystemExit(f"ekimo import failed ({run.returncode}): {run.stderr[-2000:]}")
    report = json.loads(run.stdout)
    # End to end, as `\copy` is timed: the whole process; the import's own share shown apart.
    print(f"  (of which the import itself, its report's duration: {report['duration_ms']} ms)")
    return run.wall, run.peak_mb, report


# What a user's own script would do: read every row of the first sheet, nothing else.
_BARE_READ = (
    "import sys\n"
    "from python_calamine import CalamineWorkbook\n"
    "for _ in CalamineWorkbook.from_path(sys.argv[1]).get_sheet_by_index(0).iter_rows():\n"
    "    pass\n"
)


def _calamine_process(path: Path) -> float:
    """Wall seconds of a new Python process that reads `path` with python-calamine."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", _BARE_READ, str(path)], check=True)
    return time.perf_counter() - started


def _settle(url: str, statement: str | None = None) -> None:
    """Outside the timing: `statement`, then the autovacuum work the earlier imports left (it
    would take a core from whatever runs next) and a checkpoint of their WAL."""
    first = ["-c", statement] if statement else []
    vacuum = ["-c", "VACUUM (ANALYZE) products, pending_products", "-c", "CHECKPOINT"]
    subprocess.run(["psql", url, "-q", *first, *vacuum], check=True)


def _xlsx_pairs(
    env: dict[str, str], url: str, path: Path, *, empty_catalog: bool, pairs: int
) -> tuple[float, float, float, float]:
    """Whole processes, as a user runs them: `ekimo import` and a bare calamine read of the same
    file in turn, `pairs` times (pairing keeps the ratio fair when the machine's speed drifts).
    (median ekimo s, median calamine s, median of the pairs' ratios, peak MB)."""
    ours: list[float] = []
    bare: list[float] = []
    peak = 0.0
    for _ in range(pairs):
        _settle(url, "TRUNCATE products" if empty_catalog else None)
        run = run_ekimo(env, "import", str(path), "--json")
        if run.returncode != 0:
            raise SystemExit(f"ekimo import failed ({run.returncode}): {run.stderr[-2000:]}")
        ours.append(run.wall)
        peak = max(peak, run.peak_mb)
        bare.append(_calamine_process(path))
    ratios = [a / b for a, b in zip(ours, bare, strict=True)]
    return statistics.median(ours), statistics.median(bare), statistics.median(ratios), peak


def _one_row_import(env: dict[str, str], url: str, runs: int) -> tuple[float, float]:
    """(median wall s, peak MB) of `ekimo import` of a one-row CSV, whole process."""
    path = DATA / "one-row.csv"
    path.write_text("barcode,name,price,quantity,last_updated\n0000000000017,One,1.00,1,\n")
    _settle(url)
    walls: list[float] = []
    peak = 0.0
    for _ in range(runs):
        run = run_ekimo(env, "import", str(path), "--json")
        if run.returncode != 0:
            raise SystemExit(f"ekimo import failed ({run.returncode}): {run.stderr[-2000:]}")
        walls.append(run.wall)
        peak = max(peak, run.peak_mb)
    return statistics.median(walls), peak


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
    parser.add_argument("--pairs", type=int, default=5, help="XLSX runs of each side")
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
        for label, empty in (("new catalog", True), ("again, unchanged", False)):
            ours, bare, ratio, peak = _xlsx_pairs(
                env, url, xlsx, empty_catalog=empty, pairs=args.pairs
            )
            print(
                f"XLSX {args.xlsx_rows:,} rows, {label:<16} ekimo import {ours:5.2f} s, bare "
                f"calamine read {bare:5.2f} s: {ratio:4.2f}x the time  peak RSS {peak:4.0f} MB"
                "  goal <= 2.5x"
            )
        print(
            f"(XLSX: whole processes, medians of {args.pairs} pairs run in turn; the ratio is "
            "the median of the pairs' ratios)"
        )
        one_row, peak = _one_row_import(env, url, runs=7)
        print(
            f"one-row CSV import, whole process: median {one_row:.2f} s of 7  "
            f"peak RSS {peak:.0f} MB  goal < 0.5 s"
        )
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"benchmark process peak RSS {own} MB")
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
