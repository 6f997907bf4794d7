"""A sync run cut by a database outage ends `failed` with the reason (or, if the database stays
away, is closed by the next run); nothing is lost and nothing stays `running`."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ekimo.container import Container
from ekimo.settings import Settings
from ekimo.sync import service as sync_service
from ekimo.sync.errors import DatabaseUnavailable
from tests.outages import Outage, outage_database
from tests.sync.conftest import insert_products, make_service, pending
from tests.sync.fake_api import FakeApi, Reply


async def _runs(container: Container) -> list[tuple[str, str | None]]:
    async with container.engine.connect() as conn:
        rows = await conn.execute(text("SELECT status, error FROM sync_runs ORDER BY id"))
        return [(r[0], r[1]) for r in rows]


async def _run_cut_by_an_outage(
    own: Container, sync_settings: Settings, fake_api: FakeApi, outage: Outage
) -> None:
    await insert_products(own, 30)
    # The first batch is in flight when the database goes; the API then acknowledges it.
    fake_api.faults.append(Reply(hook=outage.cut, accept=True))
    service = make_service(own, sync_settings.with_values(database_url=outage.url), concurrency=1)
    with pytest.raises(DatabaseUnavailable):
        await service.run("test")


async def test_a_run_cut_by_an_outage_ends_failed_with_the_reason(
    settings: Settings, sync_settings: Settings, fake_api: FakeApi
) -> None:
    assert settings.database_url is not None
    async with (
        outage_database(settings.database_url) as outage,
        Container(settings.with_values(database_url=outage.url)) as own,
    ):
        restored = False

        async def restore_soon() -> None:
            nonlocal restored
            if not restored:
                restored = True
                await outage.restore()

        # The run tries to record its end for a while: the database is back meanwhile.
        original = sync_service.SyncService._finish

        async def finish_after_restore(self: sync_service.SyncService, *args: object) -> None:
            await restore_soon()
            await original(self, *args)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sync_service.SyncService, "_finish", finish_after_restore)
            await _run_cut_by_an_outage(own, sync_settings, fake_api, outage)

        runs = await _runs(own)
        assert len(runs) == 1
        status, error = runs[0]
        assert status == "failed"
        assert error is not None
        assert "database became unavailable" in error
        assert len(await pending(own)) == 30  # nothing was marked: the next run sends all

        summary = await make_service(own, sync_settings.with_values(database_url=outage.url)).run(
            "test"
        )
        assert summary.status == "succeeded", summary
        assert await pending(own) == set()


async def test_a_run_whose_end_cannot_be_written_is_closed_by_the_next_run(
    settings: Settings, sync_settings: Settings, fake_api: FakeApi
) -> None:
    assert settings.database_url is not None
    async with (
        outage_database(settings.database_url) as outage,
        Container(settings.with_values(database_url=outage.url)) as own,
    ):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sync_service, "FINISH_PATIENCE_S", 0.0)
            await _run_cut_by_an_outage(own, sync_settings, fake_api, outage)
        await outage.restore()
        assert [status for status, _ in await _runs(own)] == ["running"]

        summary = await make_service(own, sync_settings.with_values(database_url=outage.url)).run(
            "test"
        )
        assert summary.status == "succeeded", summary
        runs = await _runs(own)
        assert [status for status, _ in runs] == ["failed", "succeeded"]
        assert runs[0][1] is not None
        assert "interrupted" in runs[0][1]
        assert await pending(own) == set()
