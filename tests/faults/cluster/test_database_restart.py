"""PostgreSQL restarted (`pg_ctl restart -m fast`: every connection dropped at once, as in a
failover) while ekimo works: an upload gets a 503 problem document with Retry-After and writes
nothing, a queued import ends `failed` with the reason, a sync run ends `failed` in one line; and
the same ekimo goes on working once the database is back, without a restart."""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.ekimo_process import served, spawned
from tests.faults.fault_kit import (
    BIG_IMPORT_ROWS,
    assert_database_unavailable,
    assert_nothing_running,
    barcode,
    ekimo_env,
    finished,
    healthy,
    import_report,
    insert_pending_products,
    login,
    not_done,
    product_count,
    products_csv,
    query,
    upload,
    wait_for_import,
    wait_for_import_at_work,
    wait_until,
)
from tests.faults.restartable_pg import Cluster
from tests.sync.fake_api import FakeApi, Reply

pytestmark = pytest.mark.own_cluster

SMALL = 1000


def test_an_upload_cut_by_a_restart_is_a_503_and_the_next_import_works(
    own_cluster: Cluster, own_database: str, pycache: Path, tmp_path: Path
) -> None:
    env = ekimo_env(own_database, pycache)
    # The server goes first on the way out: a request still waiting for it ends with it.
    with ThreadPoolExecutor(1) as pool, served(env, tmp_path, "--no-worker") as api:
        headers = login(api.url)
        # Cut while ekimo sends the file (COPY), then while PostgreSQL applies it (MERGE).
        for step in ("COPY", "MERGE"):
            answer = pool.submit(upload, api.url, headers, products_csv(BIG_IMPORT_ROWS))
            wait_for_import_at_work(own_database, not_done(answer), step)
            own_cluster.restart()
            response = answer.result(timeout=60)

            assert_database_unavailable(response)
            assert product_count(own_database) == 0
            assert query(own_database, "SELECT id, status FROM imports") == []

        # The same process, not restarted: the next import is applied, and it is healthy.
        again = upload(api.url, headers, products_csv(SMALL))
        assert again.status_code == 200, again.text
        assert (again.json()["status"], again.json()["created"]) == ("applied", SMALL)
        assert product_count(own_database) == SMALL
        assert_nothing_running(own_database)
        wait_until(lambda: healthy(api.url), "GET /health to answer 200")


def test_an_ekimo_import_cut_by_a_restart_exits_1_in_one_line(
    own_cluster: Cluster, own_database: str, pycache: Path, tmp_path: Path
) -> None:
    env = ekimo_env(own_database, pycache)
    (tmp_path / "big.csv").write_bytes(products_csv(BIG_IMPORT_ROWS))
    (tmp_path / "small.csv").write_bytes(products_csv(SMALL))
    with spawned(env, tmp_path, "import", "big.csv") as cli:
        wait_for_import_at_work(own_database, lambda: cli.process.poll() is None, "COPY")
        own_cluster.restart()
        assert cli.wait() == 1, cli.output
    assert "Traceback" not in cli.output
    assert "database is unavailable" in cli.output.strip().splitlines()[-1], cli.output
    assert product_count(own_database) == 0
    assert query(own_database, "SELECT id FROM imports") == []

    with spawned(env, tmp_path, "import", "small.csv", "--json") as again:
        assert again.wait() == 0, again.output
    assert product_count(own_database) == SMALL
    assert_nothing_running(own_database)


# Where the worker ends a job, for better or worse (SAQ's log).
JOB_ENDED = ("Finished Job<function: import_products_file", "Error processing job")


def test_a_queued_import_cut_by_a_restart_ends_failed_with_the_reason(
    own_cluster: Cluster, own_database: str, pycache: Path, tmp_path: Path
) -> None:
    env = ekimo_env(own_database, pycache)
    with served(env, tmp_path) as api:  # the API and its worker, in one process
        headers = login(api.url)
        queued = upload(api.url, headers, products_csv(BIG_IMPORT_ROWS), **{"async": "true"})
        assert queued.status_code == 202, queued.text
        import_id = queued.json()["import_id"]
        wait_for_import_at_work(own_database, lambda: api.process.poll() is None, "MERGE")
        own_cluster.restart()

        # Its job has ended (it records the outcome before): the import is over, failed.
        report: dict[str, Any] = {}

        def over() -> bool:
            report.update(import_report(api.url, headers, import_id))
            return finished(report) or any(line in api.output for line in JOB_ENDED)

        wait_until(over, lambda: f"import {import_id} to end: {report}")
        report.update(import_report(api.url, headers, import_id))
        assert report["status"] == "failed", report
        reason = report["errors"][0]["message"]
        assert "database" in reason, reason
        assert "nothing was written" in reason, reason
        assert product_count(own_database) == 0
        assert_nothing_running(own_database)
        # An outage is logged in a line, not as a failed job's traceback.
        assert "Traceback" not in api.output, api.output

        # The same process, not restarted: the next queued import is applied.
        again = upload(api.url, headers, products_csv(SMALL), **{"async": "true"})
        assert again.status_code == 202, again.text
        done = wait_for_import(api.url, headers, again.json()["import_id"], finished)
        assert (done["status"], done["created"]) == ("applied", SMALL), done
        assert product_count(own_database) == SMALL


SYNCED = 300


async def ekimo_sync(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ekimo",
        "sync",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def outcome(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_sync_cut_by_a_restart_fails_in_one_line_and_a_dead_run_is_closed(
    own_cluster: Cluster, own_database: str, fake_api: FakeApi, pycache: Path, tmp_path: Path
) -> None:
    env = ekimo_env(
        own_database,
        pycache,
        SYNC_BASE_URL=fake_api.url,
        SYNC_USERNAME="ekimo",
        SYNC_PASSWORD="secret",
        SYNC_BATCH_SIZE="10",
        SYNC_MAX_ATTEMPTS="3",
    )
    await asyncio.to_thread(insert_pending_products, own_database, SYNCED)

    # 1. The database restarts while the first batch is in flight; the API acknowledges it.
    fake_api.faults.append(Reply(hook=lambda: asyncio.to_thread(own_cluster.restart), accept=True))
    code, out, err = await outcome(await ekimo_sync(env, tmp_path))
    assert code == 1, out + err
    assert "Traceback" not in out + err
    last = err.strip().splitlines()[-1]
    assert "database became unavailable" in last, err
    runs = await asyncio.to_thread(query, own_database, "SELECT status, error FROM sync_runs")
    assert len(runs) == 1
    assert runs[0][0] == "failed"
    assert "database became unavailable" in runs[0][1]
    # Only what the API acknowledged may be marked; the rest stays pending.
    marked = await asyncio.to_thread(
        query,
        own_database,
        "SELECT barcode FROM products p WHERE NOT EXISTS "
        "(SELECT 1 FROM pending_products s WHERE s.product_id = p.id)",
    )
    assert {b for (b,) in marked} <= set(fake_api.delivered_barcodes())
    assert len(marked) < SYNCED

    # 2. A run whose process dies mid-run (SIGKILL) is left `running`...
    killed: list[asyncio.subprocess.Process] = []

    async def kill_the_sender() -> None:
        killed[0].kill()
        await killed[0].wait()

    fake_api.faults.append(Reply(hook=kill_the_sender, drop=True))
    killed.append(await ekimo_sync(env, tmp_path))
    code, _, _ = await outcome(killed[0])
    assert code == -9
    statuses = await asyncio.to_thread(
        query, own_database, "SELECT status FROM sync_runs ORDER BY id"
    )
    assert [s for (s,) in statuses] == ["failed", "running"]

    # 3. ... and the next run closes it, then sends everything still pending.
    code, out, err = await outcome(await ekimo_sync(env, tmp_path))
    assert code == 0, out + err
    runs = await asyncio.to_thread(
        query, own_database, "SELECT status, error FROM sync_runs ORDER BY id"
    )
    assert [s for s, _ in runs] == ["failed", "failed", "succeeded"]
    assert "interrupted" in runs[1][1]
    assert await asyncio.to_thread(
        query, own_database, "SELECT count(*) FROM pending_products"
    ) == [(0,)]
    assert set(fake_api.delivered_barcodes()) == {barcode(n) for n in range(1, SYNCED + 1)}
    await asyncio.to_thread(assert_nothing_running, own_database)


def test_the_first_request_after_a_restart_is_served(
    own_cluster: Cluster, own_database: str, pycache: Path, tmp_path: Path
) -> None:
    """The pool's connections all die with the restart; none is pinged before use (a round
    trip per request), yet none that died is handed to a request."""
    env = ekimo_env(own_database, pycache)
    with served(env, tmp_path, "--no-worker") as api:
        headers = login(api.url)
        with ThreadPoolExecutor(8) as pool:  # several pooled connections, not just one
            answers = list(pool.map(lambda _: product_page(api.url, headers), range(16)))
        assert answers == [200] * 16
        own_cluster.restart()
        assert product_page(api.url, headers) == 200
        assert healthy(api.url)


def product_page(api_url: str, headers: dict[str, str]) -> int:
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as http:
        return http.get("/products", params={"limit": 5}).status_code
