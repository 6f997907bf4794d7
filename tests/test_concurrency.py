"""Writers of `products` at the same time: imports, received batches and the sync's marking.

Every writer takes PRODUCTS_WRITE_LOCK before it locks a product row (an import exclusive, the
others shared), and the shared holders lock rows in barcode order (`ekimo.products.writes`). So
on overlapping products, all run together for a few seconds, none deadlocks, and every product
ends with the values of the last writer that wrote it. An import takes the lock only to write:
while an upload is still being read, the other writers go ahead.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from ekimo.container import Container
from ekimo.imports import service as import_service
from ekimo.imports.fast import csv as fast_csv
from ekimo.imports.fast import sheet_pieces
from ekimo.imports.fast import xlsx as fast_xlsx
from ekimo.imports.schemas import ImportReport
from ekimo.imports.service import ImportService
from ekimo.products import writes
from ekimo.sync import receiver
from ekimo.sync.service import SyncService
from tests.imports.conftest import csv_bytes, xlsx_bytes
from tests.sync.conftest import FAST
from tests.sync.fake_api import FakeApi

# How long the writers run together; and how long a writer that must not wait may take.
DURATION_S = 4.0
PATIENCE_S = 10.0
DEADLOCK = "40P01"
BASE = datetime(2025, 1, 1, tzinfo=UTC)
SEEDED = [str(4_000_000_000_000 + i) for i in range(60)]  # in the catalog before the writers
NEW = [str(4_000_000_000_000 + i) for i in range(60, 120)]  # created by whoever comes first
BARCODES = SEEDED + NEW

# What a product holds after a write: name, price, quantity (as PostgreSQL prints them) and
# last_updated.
Values = tuple[str, str, str, datetime]


def values_for(writer: str, number: int, barcodes: list[str]) -> dict[str, Values]:
    """Write `number`'s values: its own name, later writes have a later last_updated."""
    moment = BASE + timedelta(seconds=number)
    return {
        b: (f"{writer} {number}", f"{number}.{b[-2:]}", f"{number}.{b[-3:]}", moment)
        for b in barcodes
    }


def naive(moment: datetime) -> datetime:
    """As a file holds it: UTC without a zone."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def is_deadlock(exc: BaseException) -> bool:
    """`exc`, or an error it wraps (an exception group, a cause), is SQLSTATE 40P01."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        error = todo.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if (
            getattr(error, "sqlstate", None) == DEADLOCK
            or getattr(error, "pgcode", None) == DEADLOCK
        ):
            return True
        if isinstance(error, BaseExceptionGroup):
            todo.extend(error.exceptions)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        for inner in (error.__cause__, error.__context__, getattr(error, "orig", None)):
            if isinstance(inner, BaseException):
                todo.append(inner)
    return False


@dataclass
class Write:
    """One write of product values: a file imported or a batch received."""

    writer: str
    number: int
    values: dict[str, Values]
    started: float
    ended: float = float("inf")
    ok: bool = False
    created: int = 0


class Writers:
    """Writers repeating their step until the deadline; what each wrote and what failed."""

    def __init__(self, duration: float) -> None:
        self.deadline = time.monotonic() + duration
        self.numbers = itertools.count(1)
        self.writes: list[Write] = []
        self.failures: list[str] = []
        self.deadlocks: list[str] = []
        self.steps: dict[str, int] = {}

    def begin(self, writer: str, barcodes: list[str]) -> Write:
        number = next(self.numbers)
        write = Write(writer, number, values_for(writer, number, barcodes), time.monotonic())
        self.writes.append(write)
        return write

    @staticmethod
    def done(write: Write, created: int) -> None:
        write.ended = time.monotonic()
        write.ok = True
        write.created = created

    async def repeat(self, writer: str, step: Callable[[], Awaitable[None]]) -> None:
        while time.monotonic() < self.deadline:
            try:
                await step()
            except Exception as exc:
                (self.deadlocks if is_deadlock(exc) else self.failures).append(f"{writer}: {exc!r}")
            else:
                self.steps[writer] = self.steps.get(writer, 0) + 1


def sample(rng: random.Random) -> list[str]:
    """Overlapping barcodes in a random order (a file's rows come in any order)."""
    return rng.sample(BARCODES, rng.randint(20, 80))


def file_rows(write: Write, *, pad_names: bool = False) -> list[list[Any]]:
    return [
        [b, f"  {name}" if pad_names else name, price, quantity, naive(moment)]
        for b, (name, price, quantity, moment) in write.values.items()
    ]


def csv_of(rows: list[list[Any]]) -> bytes:
    return csv_bytes([[*row[:4], row[4].isoformat()] for row in rows])


def xlsx_of(rows: list[list[Any]]) -> bytes:
    # Numbers as numbers: the XLSX fast path takes typed cells.
    return xlsx_bytes([[b, n, float(p), float(q), m] for b, n, p, q, m in rows])


def received(write: Write) -> bytes:
    items = [
        {"barcode": b, "name": n, "price": p, "quantity": q, "last_updated": m.isoformat()}
        for b, (n, p, q, m) in write.values.items()
    ]
    return json.dumps({"products": items}).encode()


async def seed(container: Container) -> None:
    """SEEDED in the catalog, inserted in reverse: ids ascend as barcodes descend, so the
    sync's batches (in id order) meet rows in the opposite order to a receiver's."""
    async with container.engine.begin() as conn:
        for barcode in reversed(SEEDED):
            await conn.execute(
                text(
                    "WITH inserted AS (INSERT INTO products (barcode, name, price, quantity, "
                    "last_updated, version, created_at, updated_at) "
                    "VALUES (:b, 'seed 0', 1, 1, :m, 1, now(), now()) RETURNING id, barcode) "
                    "INSERT INTO pending_products (product_id, barcode, version, synced_version) "
                    "SELECT id, barcode, 1, 0 FROM inserted"
                ),
                {"b": barcode, "m": BASE},
            )


async def final_products(container: Container) -> dict[str, tuple[Any, ...]]:
    async with container.engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT p.barcode, p.name, p.price::text, p.quantity::text, p.last_updated, "
            "p.version, coalesce(s.synced_version, p.version) "
            "FROM products p LEFT JOIN pending_products s ON s.product_id = p.id"
        )
        return {r[0]: tuple(r[1:]) for r in rows}


def sync_service(container: Container, api: FakeApi) -> SyncService:
    settings = container.settings.with_values(
        sync_base_url=api.url,
        sync_username="ekimo",
        sync_password="secret",
        sync_batch_size=15,
        sync_max_attempts=4,
    )
    return SyncService(container, settings=settings, policy=FAST, concurrency=3)


async def test_imports_receivers_and_syncs_on_the_same_products_never_deadlock(
    container: Container,
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    fake_api: FakeApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await seed(container)
    imports = ImportService(container)
    sync = sync_service(container, fake_api)
    taken_csv, fallback_csv = fast_csv.stats["taken"], fast_csv.stats["fallback"]
    taken_xlsx = fast_xlsx.stats["taken"]
    run = Writers(DURATION_S)

    async def applied(report: ImportReport, write: Write) -> None:
        assert report.status == "applied", report
        run.done(write, report.created)

    def csv_over_http() -> Callable[[], Awaitable[None]]:
        rng = random.Random("csv")

        async def step() -> None:
            write = run.begin("csv", sample(rng))
            content = csv_of(file_rows(write))
            response = await client.put(
                "/products", files={"file": ("p.csv", content)}, headers=auth_headers
            )
            assert response.status_code == 200, f"HTTP {response.status_code}: {response.text}"
            assert response.json()["status"] == "applied", response.text
            run.done(write, response.json()["created"])

        return step

    def csv_by_python() -> Callable[[], Awaitable[None]]:
        # Names with spaces around: the fast path refuses them (after its MERGE, under the
        # lock), then the Python path imports the file.
        rng = random.Random("csvpy")

        async def step() -> None:
            write = run.begin("csvpy", sample(rng))
            content = csv_of(file_rows(write, pad_names=True))
            await applied(await imports.run(io.BytesIO(content), "p.csv"), write)

        return step

    def xlsx() -> Callable[[], Awaitable[None]]:
        rng = random.Random("xlsx")

        async def step() -> None:
            write = run.begin("xlsx", sample(rng))
            content = xlsx_of(file_rows(write))
            await applied(await imports.run(io.BytesIO(content), "p.xlsx"), write)

        return step

    def receiver_over_http() -> Callable[[], Awaitable[None]]:
        rng = random.Random("rx")

        async def step() -> None:
            write = run.begin("rx", sample(rng))
            response = await client.post(
                "/products",
                content=received(write),
                headers={**auth_headers, "Content-Type": "application/json"},
            )
            assert response.status_code == 201, f"HTTP {response.status_code}: {response.text}"
            run.done(write, response.json()["created"])

        return step

    def receiver_direct() -> Callable[[], Awaitable[None]]:
        rng = random.Random("rx2")

        async def step() -> None:
            write = run.begin("rx2", sample(rng))
            async with container.session() as session:
                result = await receiver.receive(session, received(write))
            run.done(write, result.created)

        return step

    def sync_runs() -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            summary = await sync.run("test")
            assert summary.status == "succeeded", summary

        return step

    async def marker() -> None:
        # Marks what it read, in a random order: the sync's marking, more often and on more
        # products at once than the runs above.
        rng = random.Random("mark")
        async with container.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")

            async def step() -> None:
                found = await conn.execute(
                    text("SELECT id, version FROM products WHERE barcode = ANY(:b)"),
                    {"b": sample(rng)},
                )
                rows = [(int(r[0]), int(r[1])) for r in found]
                rng.shuffle(rows)
                ids = "{" + ",".join(str(i) for i, _ in rows) + "}"
                versions = "{" + ",".join(str(v) for _, v in rows) + "}"
                await writes.mark_synced(conn, ids, versions)

            await run.repeat("mark", step)

    async with asyncio.TaskGroup() as group:
        for name, step in (
            ("csv", csv_over_http()),
            ("csvpy", csv_by_python()),
            ("xlsx", xlsx()),
            ("rx", receiver_over_http()),
            ("rx2", receiver_direct()),
            ("sync", sync_runs()),
        ):
            group.create_task(run.repeat(name, step))
        group.create_task(marker())

    # A deadlock behind an HTTP answer is only in the app's log.
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and r.exc_info
        and r.exc_info[1]
        and is_deadlock(r.exc_info[1])
    ]
    assert run.deadlocks == []
    assert logged == []
    assert run.failures == []
    # Every writer went round several times, on the same products as the others.
    assert set(run.steps) == {"csv", "csvpy", "xlsx", "rx", "rx2", "sync", "mark"}, run.steps
    assert min(run.steps.values()) >= 2, run.steps
    # The paths meant: the CSV and XLSX fast paths, and the Python path after a fallback.
    assert fast_csv.stats["taken"] - taken_csv == run.steps["csv"]
    assert fast_csv.stats["fallback"] - fallback_csv == run.steps["csvpy"]
    assert fast_xlsx.stats["taken"] - taken_xlsx == run.steps["xlsx"]

    final = await final_products(container)
    applied_writes = {w.number: w for w in run.writes if w.ok}
    assert not [w for w in run.writes if not w.ok]
    for barcode in BARCODES:
        if barcode not in final:
            assert barcode in NEW
            assert not any(barcode in w.values for w in applied_writes.values())
            continue
        name, price, quantity, last_updated, version, synced_version = final[barcode]
        assert 0 <= synced_version <= version
        number = int(name.rsplit(" ", 1)[1])
        if number == 0:  # the seed: nobody wrote it
            assert not any(barcode in w.values for w in applied_writes.values()), barcode
            continue
        last = applied_writes[number]
        # The values of one write, whole (no column of another)...
        assert last.values[barcode] == (name, price, quantity, last_updated), barcode
        # ...and of the last: no write of this product began after it had ended (that one
        # came later, and would have won: an import always, a receiver by its later
        # last_updated).
        later = [
            w for w in applied_writes.values() if barcode in w.values and w.started > last.ended
        ]
        assert later == [], (barcode, last, later)
    # Each new product was created once, and counted so by whoever created it.
    assert sum(w.created for w in applied_writes.values()) == len(set(final) & set(NEW))

    # With the writers gone, a sync leaves nothing pending: the marking still marks.
    summary = await sync.run("test")
    assert summary.status == "succeeded", summary
    async with container.engine.connect() as conn:
        pending = await conn.scalar(text("SELECT count(*) FROM pending_products"))
    assert pending == 0


class SlowUpload(io.BytesIO):
    """An upload whose reading stops, once `armed`, until `released`: a file still arriving
    (or a slow disk). `reached` tells that a read is waiting."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.armed = threading.Event()
        self.reached = threading.Event()
        self.released = threading.Event()

    def read(self, size: int | None = -1) -> bytes:
        if self.armed.is_set() and not self.released.is_set():
            self.reached.set()
            self.released.wait(30)  # a bound, should the test fail before it releases
        return super().read(size)


WRITE_LOCK_HOLDERS = text(
    """
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 1
      AND ((classid::bigint << 32) | objid::bigint) = :key
    """
)


@pytest.mark.parametrize("path", ["xlsx fast", "csv fast", "csv python"])
async def test_an_import_still_reading_its_file_holds_up_no_other_writer(
    container: Container,
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    # Small pieces and reads: the file is read a little at a time, as a large one is.
    monkeypatch.setattr(sheet_pieces, "PIECE_BYTES", 2048)
    monkeypatch.setattr(sheet_pieces, "FIRST_PIECE_BYTES", 1024)
    monkeypatch.setattr(sheet_pieces, "PIECE_TO_PARTS", 0)
    monkeypatch.setattr(sheet_pieces, "READ_BYTES", 4096)
    monkeypatch.setattr(import_service, "BATCH_ROWS", 200)
    monkeypatch.setattr(fast_csv, "enabled", path != "csv python")
    monkeypatch.setattr(fast_xlsx, "enabled", True)
    rows_in_file = [str(5_000_000_000_000 + i) for i in range(2000)]
    file_write = Write("file", 1, values_for("file", 1, rows_in_file), 0.0)
    rows = file_rows(file_write)
    if path.startswith("xlsx"):
        filename, content = "slow.xlsx", xlsx_of(rows)
    else:
        filename, content = "slow.csv", csv_of(rows)
        assert len(content) > fast_csv.HEADER_BYTES  # read in more than one go
    taken = (fast_xlsx if path.startswith("xlsx") else fast_csv).stats["taken"]
    upload = SlowUpload(content)
    slow = asyncio.create_task(
        ImportService(container).run(upload, filename, progress=lambda _: upload.armed.set())
    )
    try:
        # The import has staged rows (its progress armed the upload) and waits for the rest.
        assert await asyncio.to_thread(upload.reached.wait, PATIENCE_S), "the file was not read"
        assert not slow.done()

        # Meanwhile a received batch (some products of the file, some not) is applied...
        items = [
            {
                "barcode": b,
                "name": "received",
                "price": "2.00",
                "quantity": "3.000",
                "last_updated": "2030-01-01T00:00:00Z",
            }
            for b in [*rows_in_file[:20], *(str(6_000_000_000_000 + i) for i in range(20))]
        ]
        answer = await asyncio.wait_for(
            client.post("/products", json={"products": items}, headers=auth_headers), PATIENCE_S
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["created"] == 40
        # ...another file is imported...
        other = [[b, "other", "4.00", "5.000", ""] for b in rows_in_file[100:120]]
        other += [[str(7_000_000_000_000 + i), "other", "4.00", "5.000", ""] for i in range(10)]
        report = await asyncio.wait_for(
            ImportService(container).run(io.BytesIO(csv_bytes(other)), "other.csv"), PATIENCE_S
        )
        assert (report.status, report.created) == ("applied", 30)
        # ...and nobody holds or awaits the write lock.
        async with container.engine.connect() as conn:
            holders = await conn.scalar(WRITE_LOCK_HOLDERS, {"key": writes.PRODUCTS_WRITE_LOCK})
        assert holders == 0
        assert not slow.done()
    finally:
        upload.released.set()
        outcome = await asyncio.wait_for(slow, 60)

    assert (upload.armed.is_set(), outcome.status, outcome.rows) == (True, "applied", 2000)
    # Counted under the lock, after the others wrote: 20 + 20 of its products were there.
    assert (outcome.created, outcome.updated, outcome.unchanged) == (1960, 40, 0)
    if path != "csv python":  # the fast path took it (and the other file, also a CSV)
        fast = fast_xlsx if path.startswith("xlsx") else fast_csv
        assert fast.stats["taken"] == taken + 1 + (path == "csv fast")
    final = await final_products(container)
    assert len(final) == 2000 + 20 + 10
    # The file was written last: its values everywhere it has a row.
    for barcode in rows_in_file:
        name, price, quantity, last_updated = file_write.values[barcode]
        assert final[barcode][:4] == (name, price, quantity, last_updated), barcode
    assert final["6000000000000"][0] == "received"
    assert final["7000000000000"][0] == "other"


@pytest.mark.parametrize("probes_per_page", [0, 10**9], ids=["catalog counted", "rows probed"])
@pytest.mark.parametrize("path", ["csv fast", "csv python", "xlsx fast"])
async def test_created_and_updated_are_exact_whichever_way_they_are_counted(
    container: Container, monkeypatch: pytest.MonkeyPatch, path: str, probes_per_page: int
) -> None:
    """`write_counted` counts new rows by a probe each or by counting the catalog twice,
    whichever costs less: both give the same counts, on every import path."""
    monkeypatch.setattr(writes, "PROBES_PER_PAGE", probes_per_page)
    monkeypatch.setattr(fast_csv, "enabled", path != "csv python")
    monkeypatch.setattr(fast_xlsx, "enabled", True)
    fast = fast_xlsx if path.startswith("xlsx") else fast_csv
    taken = fast.stats["taken"]
    first = values_for("first", 1, [str(8_000_000_000_000 + i) for i in range(30)])
    second = values_for("second", 2, [str(8_000_000_000_000 + i) for i in range(10, 40)])
    second |= {b: first[b] for b in list(second)[:10] if b in first}  # 10 unchanged

    async def imported(values: dict[str, Values]) -> ImportReport:
        rows = [[b, n, p, q, naive(m)] for b, (n, p, q, m) in values.items()]
        name, content = (
            ("p.xlsx", xlsx_of(rows)) if path.startswith("xlsx") else ("p.csv", csv_of(rows))
        )
        return await ImportService(container).run(io.BytesIO(content), name)

    report = await imported(first)
    assert (report.created, report.updated, report.unchanged) == (30, 0, 0)
    report = await imported(second)
    assert (report.created, report.updated, report.unchanged) == (10, 10, 10)
    if path != "csv python":
        assert fast.stats["taken"] == taken + 2
