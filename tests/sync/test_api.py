"""The sync API: start a run on the worker, list runs, one run, status."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import text

from ekimo.container import Container
from ekimo.entry.worker import create_worker
from ekimo.settings import Settings
from ekimo.sync.service import SyncService
from tests.problems import problem_of
from tests.sync.conftest import insert_products, make_service
from tests.sync.fake_api import FakeApi, Reply

RUN_FIELDS = {
    "id",
    "status",
    "trigger",
    "pending_at_start",
    "sent",
    "acknowledged",
    "rejected",
    "failed",
    "retries",
    "error",
    "started_at",
    "finished_at",
    "duration_ms",
}


async def test_sync_routes_need_a_token(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/sync"),
        ("GET", "/sync/runs"),
        ("GET", "/sync/runs/1"),
        ("GET", "/sync/status"),
        ("POST", "/products"),
    ]:
        response = await client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)


async def test_runs_are_listed_newest_first_and_paginated(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    ids = [(await SyncService(container).run("test")).id for _ in range(3)]

    page = await client.get("/sync/runs", params={"limit": 2}, headers=auth_headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert set(body) == {"items", "total", "limit", "offset"}
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 0)
    assert set(body["items"][0]) == RUN_FIELDS
    assert [r["id"] for r in body["items"]] == [ids[2], ids[1]]
    assert body["items"][0]["status"] == "succeeded"
    assert body["items"][0]["trigger"] == "test"

    rest = await client.get("/sync/runs", params={"offset": 2}, headers=auth_headers)
    assert [r["id"] for r in rest.json()["items"]] == [ids[0]]

    bad = await client.get("/sync/runs", params={"limit": 0}, headers=auth_headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


async def test_one_run_and_404(
    container: Container, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    run = await SyncService(container).run("test")
    found = await client.get(f"/sync/runs/{run.id}", headers=auth_headers)
    assert found.status_code == 200
    assert set(found.json()) == RUN_FIELDS
    stored = {k: v for k, v in run.as_dict().items() if k not in ("started_at", "finished_at")}
    assert {k: v for k, v in found.json().items() if k in stored} == stored
    assert found.json()["duration_ms"] is not None

    missing = await client.get("/sync/runs/999999", headers=auth_headers)
    assert problem_of(missing, 404) == {
        "status": 404,
        "title": "Not Found",
        "detail": "sync run 999999 does not exist",
    }


async def test_a_run_shows_as_running_while_it_goes(
    container: Container,
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    sync_settings: Settings,
    fake_api: FakeApi,
) -> None:
    await insert_products(container, 5)
    in_flight = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        in_flight.set()
        await release.wait()

    fake_api.faults.append(Reply(hook=hold, accept=True))
    task = asyncio.create_task(make_service(container, sync_settings).run("test"))
    try:
        await asyncio.wait_for(in_flight.wait(), 10)
        last = (await client.get("/sync/status", headers=auth_headers)).json()["last_run"]
        assert last["status"] == "running"
        assert (last["finished_at"], last["duration_ms"]) == (None, None)
        one = await client.get(f"/sync/runs/{last['id']}", headers=auth_headers)
        assert one.json()["status"] == "running"
    finally:
        release.set()
        run = await task
    assert run.status == "succeeded"
    done = (await client.get(f"/sync/runs/{run.id}", headers=auth_headers)).json()
    assert (done["status"], done["acknowledged"]) == ("succeeded", 5)
    assert done["finished_at"] is not None


async def test_a_sync_the_queue_refuses_is_409(
    container: Container,
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refuse(*args: object, **kwargs: object) -> None:
        return None  # what SAQ answers for a job key it already holds

    # On the class: the app under test has a container (and a queue) of its own.
    monkeypatch.setattr(type(container.queue), "enqueue", refuse)
    refused = await client.post("/sync", headers=auth_headers)
    assert problem_of(refused, 409) == {
        "status": 409,
        "title": "Conflict",
        "detail": "a sync is already queued",
    }


async def test_status_counts_pending_and_shows_the_last_run(
    container: Container,
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    sync_settings: Settings,
) -> None:
    empty = await client.get("/sync/status", headers=auth_headers)
    assert empty.json() == {"pending": 0, "pending_exact": True, "last_run": None}

    await insert_products(container, 12)
    status = await client.get("/sync/status", headers=auth_headers)
    assert status.json()["pending"] == 12

    run = await make_service(container, sync_settings).run("test")
    after = (await client.get("/sync/status", headers=auth_headers)).json()
    assert after["pending"] == 0
    assert after["last_run"]["id"] == run.id
    assert after["last_run"]["acknowledged"] == 12


async def test_post_sync_runs_the_job_on_the_worker(
    container: Container,
    settings: Settings,
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
) -> None:
    # The worker gets a container (and so a SAQ queue object) of its own, as in `ekimo worker`.
    own = Container(settings)
    await own.start()
    worker = create_worker(own, handle_signals=False, schedule=False)
    task = asyncio.create_task(worker.start())
    try:
        accepted = await client.post("/sync", headers=auth_headers)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["job_id"]

        deadline = time.monotonic() + 60
        row = None
        while time.monotonic() < deadline:
            async with container.engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(
                            "SELECT status FROM sync_runs WHERE trigger = 'api' AND finished_at "
                            "IS NOT NULL"
                        )
                    )
                ).first()
            if row is not None:
                break
            await asyncio.sleep(0.05)
        assert row is not None, "the queued sync never ran"
        assert row[0] == "succeeded"  # nothing pending
    finally:
        await worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await own.stop()
