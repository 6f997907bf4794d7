"""The sender against a stand-in external API: exact marking, retries, aborts, rejections."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time

from sqlalchemy import text

from ekimo.container import Container
from ekimo.settings import Settings
from ekimo.sync.journal import RunSummary
from ekimo.sync.service import SyncService
from tests.sync.conftest import (
    FAST,
    barcode,
    insert_products,
    make_service,
    pending,
    touch_product,
    versions,
)
from tests.sync.fake_api import FakeApi, Reply


async def stored_run(container: Container, run_id: int) -> dict[str, object]:
    async with container.engine.connect() as conn:
        row = await conn.execute(text("SELECT * FROM sync_runs WHERE id = :id"), {"id": run_id})
        return dict(row.mappings().one())


async def test_acknowledging_leaves_the_product_rows_as_they_were(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    """The pending set is apart from `products`: marking deletes narrow rows, it does not
    rewrite each product (and all of the catalog's indexes with it)."""
    await insert_products(container, 30)
    rows = text("SELECT id, xmin::text, ctid::text FROM products ORDER BY id")
    async with container.engine.connect() as conn:
        before = (await conn.execute(rows)).all()

    summary = await service.run("test")

    assert (summary.status, summary.acknowledged) == ("succeeded", 30), summary
    assert await pending(container) == set()
    async with container.engine.connect() as conn:
        assert (await conn.execute(rows)).all() == before
        left = await conn.execute(text("SELECT count(*) FROM pending_products"))
        assert left.scalar_one() == 0


async def test_everything_delivered_marked_and_not_sent_again(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    codes = await insert_products(container, 25)

    summary = await service.run("test")

    assert summary.status == "succeeded", summary
    assert (summary.pending_at_start, summary.sent, summary.acknowledged) == (25, 25, 25)
    assert sorted(fake_api.delivered_barcodes()) == codes
    assert await pending(container) == set()
    assert fake_api.auth_calls == 1  # one token for all batches
    first = fake_api.product_posts[0]
    assert first.headers["authorization"].startswith("Bearer ")
    assert first.headers["content-type"] == "application/json"
    items = first.json()["products"]
    pairs = "".join(f"{p['barcode']}:1\n" for p in items)
    assert first.headers["idempotency-key"] == hashlib.sha256(pairs.encode()).hexdigest()
    product = next(p for p in fake_api.delivered if p["barcode"] == barcode(1))
    assert product == {
        "barcode": barcode(1),
        "name": "Product 1",
        "price": "1.25",
        "quantity": "0.500",
        "last_updated": "2025-01-02T03:04:06.123456Z",
    }
    row = await stored_run(container, summary.id)
    assert row["status"] == "succeeded"
    assert row["acknowledged"] == 25
    assert row["duration_ms"] is not None
    assert row["finished_at"] is not None

    again = await service.run("test")
    assert again.status == "succeeded"
    assert (again.pending_at_start, again.sent) == (0, 0)
    assert len(fake_api.delivered) == 25  # nothing sent again


async def test_nothing_pending_needs_no_token(
    container: Container, container_settings_without_credentials: Settings, fake_api: FakeApi
) -> None:
    summary = await make_service(container, container_settings_without_credentials).run("test")
    assert summary.status == "succeeded"
    assert fake_api.requests == []


async def test_server_errors_then_success(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    codes = await insert_products(container, 5)
    fake_api.faults.extend([Reply(status=500), Reply(status=503)])

    summary = await service.run("test")

    assert summary.status == "succeeded", summary
    assert summary.retries == 2
    assert sorted(fake_api.delivered_barcodes()) == codes
    assert await pending(container) == set()


async def test_timeout_is_retried(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    codes = await insert_products(container, 5)
    fake_api.faults.append(Reply(delay=(FAST.timeout or 0) + 1.0))

    summary = await service.run("test")

    assert summary.status == "succeeded", summary
    assert summary.retries == 1
    assert sorted(fake_api.delivered_barcodes()) == codes


async def test_dropped_connection_is_retried(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    codes = await insert_products(container, 5)
    fake_api.faults.append(Reply(drop=True))

    summary = await service.run("test")

    assert summary.status == "succeeded", summary
    assert summary.retries == 1
    assert sorted(fake_api.delivered_barcodes()) == codes


async def test_429_honours_retry_after(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    await insert_products(container, 3)
    fake_api.faults.append(Reply(status=429, headers={"Retry-After": "1"}))

    started = time.monotonic()
    summary = await service.run("test")

    assert summary.status == "succeeded", summary
    assert summary.retries == 1
    assert time.monotonic() - started >= 1.0  # waited as told, not the 10 ms backoff
    assert await pending(container) == set()


async def test_one_401_refetches_the_token(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    await insert_products(container, 15)
    # The first batch gets its token; the second is refused once (token revoked meanwhile).
    fake_api.faults.extend([Reply(accept=True), Reply(status=401)])

    summary = await make_service(container, service_settings(service), concurrency=1).run("t")

    assert summary.status == "succeeded", summary
    assert fake_api.auth_calls == 2
    assert await pending(container) == set()


def service_settings(service: SyncService) -> Settings:
    return service._settings  # pyright: ignore[reportPrivateUsage]


async def test_401_with_a_fresh_token_aborts(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    await insert_products(container, 5)
    fake_api.faults.append(Reply(status=401))

    summary = await service.run("test")

    assert summary.status == "failed"
    assert summary.error is not None
    assert "SYNC_USERNAME" in summary.error
    assert len(await pending(container)) == 5
    assert (await stored_run(container, summary.id))["error"] == summary.error


async def test_403_aborts_the_run(
    container: Container, sync_settings: Settings, fake_api: FakeApi
) -> None:
    await insert_products(container, 30)
    fake_api.faults.append(Reply(status=403))

    summary = await make_service(container, sync_settings, concurrency=1).run("test")

    assert summary.status == "failed"
    assert summary.error is not None
    assert "403" in summary.error
    assert "rights" in summary.error
    assert len(fake_api.product_posts) == 1  # aborted: no further batches
    assert len(await pending(container)) == 30


async def test_refused_credentials_abort(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    await insert_products(container, 5)
    fake_api.auth_faults.append(Reply(status=401))

    summary = await service.run("test")

    assert summary.status == "failed"
    assert summary.error is not None
    assert "SYNC_USERNAME/SYNC_PASSWORD" in summary.error
    assert fake_api.product_posts == []
    assert (summary.sent, summary.acknowledged, summary.failed) == (5, 0, 5), summary


async def test_missing_credentials_abort(
    container: Container, container_settings_without_credentials: Settings
) -> None:
    await insert_products(container, 2)
    summary = await make_service(container, container_settings_without_credentials).run("test")
    assert summary.status == "failed"
    assert summary.error is not None
    assert "SYNC_USERNAME and SYNC_PASSWORD must be set" in summary.error
    # What the run took up and could not deliver counts as failed: it stays pending.
    assert (summary.sent, summary.acknowledged, summary.failed) == (2, 0, 2), summary
    assert len(await pending(container)) == 2


async def test_rejected_product_is_isolated_and_the_rest_delivered(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    codes = await insert_products(container, 25)
    bad = barcode(7)
    fake_api.reject_barcodes.add(bad)

    summary = await service.run("test")

    assert summary.status == "partial", summary
    assert (summary.acknowledged, summary.rejected) == (24, 1)
    assert sorted(set(fake_api.delivered_barcodes())) == [c for c in codes if c != bad]
    assert len(fake_api.delivered) == 24  # each delivered once
    assert await pending(container) == {bad}
    async with container.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM sync_rejections"))).mappings().all()
    assert len(rows) == 1
    assert (rows[0]["barcode"], rows[0]["version"], rows[0]["status_code"]) == (bad, 1, 422)
    assert bad in rows[0]["response_excerpt"]

    # Skipped until it changes: the next run has nothing to send.
    posts = len(fake_api.product_posts)
    again = await service.run("test")
    assert (again.status, again.pending_at_start) == ("succeeded", 0)
    assert len(fake_api.product_posts) == posts

    # Changed: sent again (and accepted this time).
    fake_api.reject_barcodes.clear()
    await touch_product(container, bad, "Fixed")
    third = await service.run("test")
    assert (third.status, third.acknowledged) == ("succeeded", 1)
    assert await pending(container) == set()


async def test_undeliverable_batch_fails_and_the_run_goes_on(
    container: Container, sync_settings: Settings, fake_api: FakeApi
) -> None:
    codes = await insert_products(container, 20)
    fake_api.faults.extend([Reply(status=502)] * sync_settings.sync_max_attempts)

    summary = await make_service(container, sync_settings, concurrency=1).run("test")

    assert summary.status == "partial", summary
    assert (summary.acknowledged, summary.failed) == (10, 10)
    assert summary.retries == sync_settings.sync_max_attempts - 1
    assert summary.error is not None
    assert "502" in summary.error
    assert await pending(container) == set(codes[:10])
    follow_up = await make_service(container, sync_settings).run("test")
    assert follow_up.status == "succeeded"
    assert await pending(container) == set()


async def test_product_updated_in_flight_stays_pending(
    container: Container, sync_settings: Settings, fake_api: FakeApi
) -> None:
    await insert_products(container, 5)
    changed = barcode(3)

    async def edit_while_in_flight() -> None:
        await touch_product(container, changed, "Edited during the sync")

    fake_api.faults.append(Reply(hook=edit_while_in_flight, accept=True))

    summary = await make_service(container, sync_settings).run("test")

    assert summary.status == "succeeded"
    assert await pending(container) == {changed}
    assert (await versions(container))[changed] == (2, 0)

    again = await make_service(container, sync_settings).run("test")
    assert (again.pending_at_start, again.acknowledged) == (1, 1)
    assert fake_api.delivered[-1]["name"] == "Edited during the sync"
    assert await pending(container) == set()


async def test_killed_run_loses_nothing(
    container: Container, sync_settings: Settings, fake_api: FakeApi
) -> None:
    codes = await insert_products(container, 40)
    first_ack = asyncio.Event()

    def progress(summary: RunSummary) -> None:
        if summary.acknowledged:
            first_ack.set()

    service = make_service(container, sync_settings, concurrency=1)
    task = asyncio.create_task(service.run("test", on_progress=progress))
    await asyncio.wait_for(first_ack.wait(), 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    left = await pending(container)
    assert 0 < len(left) < 40
    async with container.engine.connect() as conn:
        status, error = (
            await conn.execute(text("SELECT status, error FROM sync_runs ORDER BY id DESC"))
        ).first() or ("", "")
    assert status == "failed"
    assert "interrupted" in error

    summary = await make_service(container, sync_settings).run("test")
    assert summary.status == "succeeded", summary  # the lock was released with the killed run
    assert summary.pending_at_start == len(left)
    assert await pending(container) == set()
    assert set(fake_api.delivered_barcodes()) == set(codes)


async def test_two_runs_at_once_send_each_product_once(
    container: Container, sync_settings: Settings, fake_api: FakeApi
) -> None:
    codes = await insert_products(container, 30)
    in_flight = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        in_flight.set()
        await release.wait()

    fake_api.faults.append(Reply(hook=hold, accept=True))
    first = asyncio.create_task(make_service(container, sync_settings).run("first"))
    await asyncio.wait_for(in_flight.wait(), 10)

    second = await make_service(container, sync_settings).run("second")
    release.set()
    done = await first

    assert second.status == "skipped"
    assert second.error is not None
    assert "already running" in second.error
    skipped = await stored_run(container, second.id)
    assert (skipped["status"], skipped["trigger"], skipped["error"]) == (
        "skipped",
        "second",
        second.error,
    )
    assert skipped["finished_at"] is not None
    assert skipped["duration_ms"] is not None
    assert done.status == "succeeded"
    assert sorted(fake_api.delivered_barcodes()) == codes  # each exactly once


async def test_token_is_refetched_when_it_nears_expiry(
    container: Container, sync_settings: Settings, fake_api: FakeApi
) -> None:
    fake_api.expires_in = 5  # inside the 30 s safety margin: never reused
    await insert_products(container, 30)

    summary = await make_service(container, sync_settings, concurrency=1).run("test")

    assert summary.status == "succeeded"
    assert fake_api.auth_calls == 3  # one per batch of 10


async def test_cron_job_is_scheduled_unique_with_a_long_timeout(container: Container) -> None:
    from ekimo.entry.worker import create_worker
    from ekimo.sync.jobs import SYNC_JOB_TIMEOUT, cron_jobs, sync_products

    (cron,) = cron_jobs(container.settings.with_values(sync_interval_minutes=7))
    assert cron.function is sync_products
    assert cron.cron == "*/7 * * * *"
    assert cron.unique
    assert cron.timeout == SYNC_JOB_TIMEOUT >= 3600

    worker = create_worker(container, handle_signals=False)
    assert sync_products in [c.function for c in worker.cron_jobs]
    assert "sync_products" in worker.functions


def test_a_worker_without_schedule_has_no_cron_jobs(container: Container) -> None:
    from ekimo.entry.worker import create_worker

    worker = create_worker(container, handle_signals=False, schedule=False)
    assert worker.cron_jobs == []
    assert "sync_products" in worker.functions


async def test_bodies_built_by_postgresql_are_exact_json(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    await insert_products(container, 2)
    name = 'Crayon "Rouge" \\ 10 cm,\nné à Zürich \u2013 ✏️'
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE products SET name = :name, price = 1234567890.5, quantity = 0, "
                "last_updated = timestamptz '2025-06-30 23:59:59+02' WHERE barcode = :b"
            ),
            {"name": name, "b": barcode(1)},
        )

    summary = await service.run("test")

    assert summary.status == "succeeded", summary
    product = next(p for p in fake_api.delivered if p["barcode"] == barcode(1))
    assert product == {
        "barcode": barcode(1),
        "name": name,
        "price": "1234567890.50",
        "quantity": "0.000",
        "last_updated": "2025-06-30T21:59:59.000000Z",
    }


async def test_split_batches_carry_their_own_key(
    container: Container, service: SyncService, fake_api: FakeApi
) -> None:
    await insert_products(container, 10)  # one batch of 10, split down to the rejected one
    fake_api.reject_barcodes.add(barcode(4))

    summary = await service.run("test")

    assert (summary.acknowledged, summary.rejected) == (9, 1)
    posts = fake_api.product_posts
    assert len(posts) > 2
    for post in posts:
        items = post.json()["products"]
        pairs = "".join(f"{p['barcode']}:1\n" for p in items)
        assert post.headers["idempotency-key"] == hashlib.sha256(pairs.encode()).hexdigest()
    assert await pending(container) == {barcode(4)}
