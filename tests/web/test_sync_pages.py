"""The console's sync page over HTTP: pending count, last run, runs, and Sync now on a real
worker delivering to the stand-in external API."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from litestar import Litestar
from sqlalchemy import text

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.sync.service import SyncService
from tests.sync.conftest import insert_products
from tests.sync.fake_api import FakeApi
from tests.web.conftest import Console, ConsoleAs
from tests.web.test_catalog_pages import Table

SYNC_SECONDS = 60


async def runs_table(console: Console, path: str = "/ui/sync") -> tuple[str, Table]:
    page = await console.get(path)
    assert page.status_code == 200, page.text
    return page.text, Table(page.text)


def pending_shown(page: str) -> str:
    """The page's "N products waiting for a sync", as the number it shows."""
    found = re.search(r"<strong>([^<]+)</strong>\s*products? waiting for a sync", page)
    assert found, "no pending count on the page"
    return found.group(1)


async def audit_actions(container: Container) -> list[tuple[str, str]]:
    async with container.engine.connect() as conn:
        rows = await conn.execute(text("SELECT action, actor_name FROM audit_events ORDER BY id"))
        return [(r[0], r[1]) for r in rows]


async def test_the_page_shows_pending_last_run_and_runs(
    console_as: ConsoleAs, container: Container
) -> None:
    viewer = await console_as("viewer")
    empty, _ = await runs_table(viewer)
    assert pending_shown(empty) == "0"
    assert "No sync has run yet." in empty
    assert "<table" not in empty

    await insert_products(container, 3)
    runs = [await SyncService(container).run("test") for _ in range(2)]  # no API set: failed
    page, table = await runs_table(viewer)
    assert pending_shown(page) == "3"
    assert table.column("Run") == [str(runs[1].id), str(runs[0].id)]  # newest first
    assert table.column("Status") == [runs[1].status, runs[0].status]
    assert table.column("Trigger") == ["test", "test"]
    assert f"run {runs[1].id}, started" in page
    assert "data-refresh" not in page  # nothing going on: the page stays still


async def test_runs_come_in_pages(console_as: ConsoleAs, container: Container) -> None:
    viewer = await console_as("viewer")
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO sync_runs (status, trigger, started_at, created_at, updated_at) "
                "SELECT 'succeeded', 'test', now(), now(), now() FROM generate_series(1, 25)"
            )
        )
    first, table = await runs_table(viewer)
    assert table.column("Run")[0] == "25"
    assert len(table.body) == 20
    assert "25 runs, newest first" in first
    second, rest = await runs_table(viewer, "/ui/sync?offset=20")
    assert rest.column("Run") == ["5", "4", "3", "2", "1"]
    assert 'href="/ui/sync" rel="prev">Previous' in second

    bad = await viewer.get("/ui/sync", params={"offset": "x"})
    assert bad.status_code == 400
    assert "is not a whole number" in bad.text


async def test_a_viewer_sees_no_sync_now_and_is_refused(
    console_as: ConsoleAs, container: Container
) -> None:
    viewer = await console_as("viewer")
    page, _ = await runs_table(viewer)
    assert "Sync now" not in page

    refused = await viewer.post("/ui/sync")
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert "starting a sync needs the editor role" in refused.text
    assert ("sync.triggered", "viewer-user") not in await audit_actions(container)


async def test_after_sync_now_the_page_waits_for_the_run_but_not_forever(
    console_as: ConsoleAs, container: Container
) -> None:
    viewer = await console_as("viewer")
    now = int(time.time())
    # What the redirect after Sync now carries: the newest run then (none), and when.
    waiting, _ = await runs_table(viewer, f"/ui/sync?after=0&queued={now}")
    assert "Waiting for the worker to start the sync." in waiting
    assert 'data-refresh="2"' in waiting

    stalled, _ = await runs_table(viewer, f"/ui/sync?after=0&queued={now - 600}")
    assert "has not started after 60 seconds" in stalled
    assert "data-refresh" not in stalled

    run = await SyncService(container).run("test")  # the run it waited for has come
    done, _ = await runs_table(viewer, f"/ui/sync?after=0&queued={now}")
    assert f"run {run.id}, started" in done
    assert "data-refresh" not in done


class TestSyncNowOnTheWorker:
    """Sync now with the worker running in the app, delivering to the stand-in external API."""

    @pytest.fixture
    def app(self, container: Container, fake_api: FakeApi) -> Litestar:
        settings = container.settings.with_values(
            sync_base_url=fake_api.url, sync_username="ekimo", sync_password="secret"
        )
        # A container of its own (started by the app), whose worker syncs to the fake API.
        return create_app(Container(settings), run_worker=True)

    async def test_sync_now_queues_a_run_that_ends_in_the_runs_table(
        self, console_as: ConsoleAs, container: Container, fake_api: FakeApi
    ) -> None:
        editor = await console_as("editor")
        barcodes = await insert_products(container, 3)
        before, _ = await runs_table(editor)
        assert "Sync now</button>" in before

        queued = await editor.post("/ui/sync")
        assert queued.status_code == 200
        assert queued.history[0].status_code == 303
        assert "Sync queued" in queued.text
        assert ("sync.triggered", "editor-user") in await audit_actions(container)

        # Poll the page the browser lands on (it reloads itself while it waits).
        deadline = time.monotonic() + SYNC_SECONDS
        while True:
            page, table = await runs_table(editor, str(queued.url))
            ended = table.body and "running" not in table.column("Status")
            if ended and "console" in table.column("Trigger"):
                break
            assert "data-refresh" in page, "the page stopped refreshing before the run ended"
            assert time.monotonic() < deadline, "the queued sync never ended"
            await asyncio.sleep(0.1)
        # The worker's schedule may start a run of its own at a round minute: then the console's
        # run finds the lock taken (skipped) or nothing left to send, and the other sent it all.
        by_trigger = dict(zip(table.column("Trigger"), table.column("Status"), strict=True))
        assert by_trigger["console"] in ("succeeded", "skipped"), table.body
        assert "succeeded" in table.column("Status"), table.body
        assert sum(int(n) for n in table.column("Acknowledged")) == 3
        assert "data-refresh" not in page
        assert sorted(fake_api.delivered_barcodes()) == barcodes
        assert pending_shown(page) == "0"
