"""Two ekimo instances on two databases: one syncs into the other over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ekimo import db
from ekimo.container import Container
from ekimo.settings import Settings
from ekimo.sync.journal import RunSummary
from tests.conftest import PASSWORD
from tests.sync.conftest import (
    FAST,
    barcode,
    create_account,
    insert_products,
    make_service,
    pending,
    served_ekimo,
    touch_product,
    versions,
)

PRODUCT_COLUMNS = "SELECT barcode, name, price, quantity, last_updated FROM products"


@pytest.fixture
async def receiver_engine(receiver_settings: Settings) -> AsyncIterator[AsyncEngine]:
    assert receiver_settings.database_url is not None
    engine = create_async_engine(db.asyncpg_url(receiver_settings.database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def receiver(receiver_settings: Settings) -> AsyncIterator[str]:
    async with served_ekimo(receiver_settings) as url:
        await create_account(url, "sender", PASSWORD)
        yield url


def sender_settings(container: Container, url: str) -> Settings:
    return container.settings.with_values(
        sync_base_url=url, sync_username="sender", sync_password=PASSWORD, sync_batch_size=50
    )


async def rows(engine: AsyncEngine) -> set[tuple[object, ...]]:
    async with engine.connect() as conn:
        return {tuple(r) for r in await conn.execute(text(PRODUCT_COLUMNS))}


async def test_one_ekimo_syncs_into_another(
    container: Container, receiver: str, receiver_engine: AsyncEngine
) -> None:
    await insert_products(container, 230)
    settings = sender_settings(container, receiver)

    summary = await make_service(container, settings).run("test")

    assert summary.status == "succeeded", summary
    assert (summary.pending_at_start, summary.acknowledged) == (230, 230)
    assert await pending(container) == set()
    assert await rows(receiver_engine) == await rows(container.engine)
    async with receiver_engine.connect() as conn:
        not_synced = await conn.execute(text("SELECT count(*) FROM pending_products"))
        assert not_synced.scalar_one() == 0  # stored as already synced: no echo onwards

    again = await make_service(container, settings).run("test")
    assert (again.status, again.pending_at_start, again.sent) == ("succeeded", 0, 0)

    # An edit travels as an update.
    await touch_product(container, barcode(5), "Renamed")
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE products SET last_updated = now() WHERE barcode = :b"), {"b": barcode(5)}
        )
    third = await make_service(container, settings).run("test")
    assert (third.status, third.acknowledged) == ("succeeded", 1)
    assert await rows(receiver_engine) == await rows(container.engine)


async def test_killed_run_loses_nothing_between_two_ekimos(
    container: Container, receiver: str, receiver_engine: AsyncEngine
) -> None:
    await insert_products(container, 400)
    settings = sender_settings(container, receiver)
    first_ack = asyncio.Event()

    def progress(summary: RunSummary) -> None:
        if summary.acknowledged:
            first_ack.set()

    task = asyncio.create_task(
        make_service(container, settings, concurrency=1).run("test", on_progress=progress)
    )
    await asyncio.wait_for(first_ack.wait(), 30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert 0 < len(await pending(container)) < 400

    summary = await make_service(container, settings).run("test")
    assert summary.status == "succeeded", summary
    assert await pending(container) == set()
    assert await rows(receiver_engine) == await rows(container.engine)


async def test_sync_to_itself_ends_with_nothing_pending(
    container: Container, settings: Settings
) -> None:
    await insert_products(container, 120)
    async with served_ekimo(settings) as url:
        await create_account(url, "sender", PASSWORD)
        service = make_service(container, sender_settings(container, url), policy=FAST)
        summary = await service.run("test")
        assert summary.status == "succeeded", summary
        assert summary.acknowledged == 120
        assert await pending(container) == set()
        assert set((await versions(container)).values()) == {(1, 1)}  # unchanged: no echo
        again = await service.run("test")
        assert (again.pending_at_start, again.sent) == (0, 0)
