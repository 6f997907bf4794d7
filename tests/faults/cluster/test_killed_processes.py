"""ekimo processes killed outright (SIGKILL: nothing of theirs runs any more) in the middle of
their work: an API during an upload, a worker during a queued import, a receiver during a sync.
Nothing partial is written, nothing stays `running`, and the work is done once a process is back
(the sender of a sync never stops: it waits for the receiver)."""

from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ekimo.imports.jobs import IMPORT_RUN_LOCK, ORPHAN_MESSAGE
from tests.conftest import PASSWORD
from tests.faults.ekimo_process import free_port, served, spawned
from tests.faults.fault_kit import (
    BIG_IMPORT_ROWS,
    assert_nothing_running,
    busy_sessions,
    ekimo_env,
    finished,
    import_report,
    insert_pending_products,
    login,
    not_done,
    product_count,
    products_csv,
    query,
    scalar,
    upload,
    wait_for_import,
    wait_for_import_at_work,
    wait_until,
)
from tests.faults.restartable_pg import Cluster

pytestmark = pytest.mark.own_cluster

SMALL = 1000


def test_an_api_killed_mid_import_writes_nothing_and_the_next_one_imports(
    own_database: str, pycache: Path, tmp_path: Path
) -> None:
    env = ekimo_env(own_database, pycache)
    # The server goes first on the way out: a request still waiting for it ends with it.
    with ThreadPoolExecutor(1) as pool, served(env, tmp_path, "--no-worker") as api:
        headers = login(api.url)
        answer = pool.submit(upload, api.url, headers, products_csv(BIG_IMPORT_ROWS))
        # Killed while PostgreSQL applies the file, under the catalog's write lock.
        wait_for_import_at_work(own_database, not_done(answer), "MERGE")
        assert api.stop(signal.SIGKILL) == -signal.SIGKILL
        with pytest.raises(httpx.TransportError):  # no answer: the connection is gone
            answer.result(timeout=60)
    assert product_count(own_database) == 0

    # Started again, right away (the dead one's MERGE may still run, waiting to be rolled
    # back): the next import waits for the write lock, then is applied.
    (tmp_path / "again").mkdir()
    with served(env, tmp_path / "again", "--no-worker") as api:
        again = upload(api.url, login(api.url, create=False), products_csv(SMALL))
        assert again.status_code == 200, again.text
        assert (again.json()["status"], again.json()["created"]) == ("applied", SMALL)
        # Once the dead process's sessions are gone, for good: only the second import.
        wait_until(lambda: busy_sessions(own_database) == 0, "the killed API's sessions to end")
        assert product_count(own_database) == SMALL
        assert query(own_database, "SELECT status FROM imports") == [("applied",)]
        assert_nothing_running(own_database)


def import_lock_held(database_url: str, import_id: int) -> bool:
    """Whether a session holds the lock of the job importing `import_id` (what the sweep
    checks: a worker's session ends with its process, and the lock with it)."""
    return bool(
        scalar(
            database_url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND objid = %s AND objsubid = 2",
            IMPORT_RUN_LOCK,
            import_id,
        )
    )


def test_a_worker_killed_mid_import_is_swept_to_failed(
    own_database: str, pycache: Path, tmp_path: Path
) -> None:
    env = ekimo_env(own_database, pycache)
    with (
        spawned(env, tmp_path, "worker", "--no-schedule") as worker,
        served(env, tmp_path, "--no-worker") as api,
    ):
        headers = login(api.url)
        queued = upload(api.url, headers, products_csv(BIG_IMPORT_ROWS), **{"async": "true"})
        assert queued.status_code == 202, queued.text
        import_id = queued.json()["import_id"]
        wait_for_import_at_work(own_database, lambda: worker.process.poll() is None, "MERGE")
        assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
        assert import_report(api.url, headers, import_id)["status"] == "running"

        # Its session ends with its MERGE (PostgreSQL finds the client gone when it answers),
        # as it would before a supervisor restarts the worker; the new worker sweeps at start.
        wait_until(
            lambda: not import_lock_held(own_database, import_id), "the killed worker's session"
        )
        with spawned(env, tmp_path, "worker", "--no-schedule"):
            report = wait_for_import(api.url, headers, import_id, finished)
            assert report["status"] == "failed", report
            assert report["errors"][0]["message"] == ORPHAN_MESSAGE
            assert product_count(own_database) == 0

            # The API was not restarted, the new worker imports the next file.
            again = upload(api.url, headers, products_csv(SMALL), **{"async": "true"})
            assert again.status_code == 202, again.text
            done = wait_for_import(api.url, headers, again.json()["import_id"], finished)
            assert (done["status"], done["created"]) == ("applied", SMALL), done
            assert product_count(own_database) == SMALL
            assert_nothing_running(own_database)


SENT = 20_000
PRODUCT_ROWS = "SELECT barcode, name, price, quantity, last_updated FROM products ORDER BY barcode"


def test_a_receiver_killed_mid_sync_and_back_gets_every_product(
    own_cluster: Cluster, own_database: str, pycache: Path, tmp_path: Path
) -> None:
    insert_pending_products(own_database, SENT)
    port = free_port()
    with own_cluster.database("ekimo_receiver") as receiver_db:
        receiver_env = ekimo_env(receiver_db, pycache)
        first, second = tmp_path / "receiver", tmp_path / "receiver-again"
        first.mkdir()
        second.mkdir()
        with served(receiver_env, first, "--no-worker", port=port) as receiver:
            login(receiver.url, "sender")
            env = ekimo_env(
                own_database,
                pycache,
                SYNC_BASE_URL=receiver.url,
                SYNC_USERNAME="sender",
                SYNC_PASSWORD=PASSWORD,
                SYNC_BATCH_SIZE="100",
                SYNC_MAX_ATTEMPTS="10",
            )
            with spawned(env, tmp_path, "sync", "--json") as sync:
                wait_until(
                    lambda: sync.process.poll() is not None or product_count(receiver_db) > 0,
                    "the first batches received",
                )
                assert receiver.stop(signal.SIGKILL) == -signal.SIGKILL
                assert sync.process.poll() is None, sync.output
                # Back a few seconds later (its start), on the same address.
                with served(receiver_env, second, "--no-worker", port=port):
                    code = sync.wait()
                    output = sync.output

        assert code == 0, output
        assert "Traceback" not in output
        summary: dict[str, Any] = json.loads(
            next(line for line in output.splitlines() if line.startswith("{"))
        )
        assert summary["status"] == "succeeded", summary
        assert summary["acknowledged"] == SENT, summary
        assert summary["retries"] > 0, summary  # it did meet the dead receiver
        assert query(receiver_db, PRODUCT_ROWS) == query(own_database, PRODUCT_ROWS)
        assert product_count(receiver_db) == SENT
        assert scalar(own_database, "SELECT count(*) FROM pending_products") == 0
        assert_nothing_running(own_database)
        assert_nothing_running(receiver_db)
