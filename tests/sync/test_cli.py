"""`ekimo sync [--json]` as a real subprocess, against the stand-in external API."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from ekimo.container import Container
from ekimo.sync.service import STOPPED_MESSAGE, SYNC_RUN_LOCK
from tests.conftest import ROOT
from tests.sync.conftest import barcode, insert_products, pending
from tests.sync.fake_api import FakeApi, Reply


async def ekimo_sync(
    env: dict[str, str],
    api: FakeApi,
    *args: str,
    started: Callable[[asyncio.subprocess.Process], None] | None = None,
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ekimo",
        "sync",
        *args,
        env={**env, "SYNC_BASE_URL": api.url, "SYNC_USERNAME": "ekimo", "SYNC_PASSWORD": "pw"},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    if started is not None:
        started(process)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_sync_json_delivers_and_exits_0(
    container: Container, cli_env: dict[str, str], fake_api: FakeApi
) -> None:
    await insert_products(container, 7)
    code, out, err = await ekimo_sync(cli_env, fake_api, "--json")
    assert code == 0, err
    summary: dict[str, Any] = json.loads(out)
    assert summary["status"] == "succeeded"
    assert (summary["pending_at_start"], summary["acknowledged"]) == (7, 7)
    assert summary["trigger"] == "cli"
    assert await pending(container) == set()

    code, out, _ = await ekimo_sync(cli_env, fake_api, "--json")
    assert code == 0
    assert json.loads(out)["pending_at_start"] == 0


async def test_cli_sync_partial_exits_1_with_a_summary(
    container: Container, cli_env: dict[str, str], fake_api: FakeApi
) -> None:
    await insert_products(container, 4)
    fake_api.reject_barcodes.add(barcode(2))
    code, out, err = await ekimo_sync(cli_env, fake_api)
    assert code == 1
    assert "partial" in out
    assert "rejected" in out
    assert "rejected by the external API" in err


async def test_cli_sync_is_skipped_while_another_run_holds_the_lock(
    container: Container, cli_env: dict[str, str], fake_api: FakeApi
) -> None:
    await insert_products(container, 3)
    async with container.engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SYNC_RUN_LOCK})
        try:
            code, out, _ = await ekimo_sync(cli_env, fake_api, "--json")
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SYNC_RUN_LOCK})
    assert code == 0
    summary = json.loads(out)
    assert summary["status"] == "skipped"
    assert "already running" in summary["error"]
    assert fake_api.requests == []
    assert len(await pending(container)) == 3


async def test_cli_sync_stopped_by_sigterm_ends_after_the_batches_in_flight(
    container: Container, cli_env: dict[str, str], fake_api: FakeApi
) -> None:
    await insert_products(container, 300)
    processes: list[asyncio.subprocess.Process] = []

    async def terminate() -> None:
        processes[0].send_signal(signal.SIGTERM)  # while the first batch is in flight

    fake_api.faults.append(Reply(hook=terminate, accept=True))
    env = {**cli_env, "SYNC_BATCH_SIZE": "10"}
    code, out, _ = await ekimo_sync(env, fake_api, "--json", started=processes.append)

    assert code == 1
    summary: dict[str, Any] = json.loads(out)
    assert (summary["status"], summary["error"]) == ("partial", STOPPED_MESSAGE)
    delivered = set(fake_api.delivered_barcodes())
    assert summary["acknowledged"] == len(delivered) > 0
    left = await pending(container)
    assert left
    assert left.isdisjoint(delivered)
    assert len(left) + len(delivered) == 300
    async with container.engine.connect() as conn:
        statuses = (await conn.execute(text("SELECT status FROM sync_runs"))).scalars().all()
    assert statuses == ["partial"]
