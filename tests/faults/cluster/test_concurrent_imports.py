"""Four overlapping imports on two API processes at once (two each, files sharing barcodes): all
are applied, each barcode is created once, nothing is left `running`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults.fault_kit import (
    assert_nothing_running,
    ekimo_env,
    login,
    product_count,
    products_csv,
    query,
    served_together,
    upload,
)

pytestmark = pytest.mark.own_cluster

ROWS = 40_000
# Each file shares a third of its barcodes with the next one.
STARTS = [1 + i * ROWS * 2 // 3 for i in range(4)]
DISTINCT = STARTS[-1] - 1 + ROWS


def test_four_overlapping_imports_on_two_api_processes_all_succeed(
    own_database: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    env = ekimo_env(own_database, tmp_path_factory.getbasetemp() / "pycache")
    files = [products_csv(ROWS, start) for start in STARTS]
    with served_together(env, [tmp_path / "a", tmp_path / "b"], "--no-worker") as apis:
        headers = login(apis[0].url)
        with ThreadPoolExecutor(len(files)) as pool:
            answers = [
                pool.submit(upload, apis[i % 2].url, headers, data) for i, data in enumerate(files)
            ]
            responses = [answer.result(timeout=120) for answer in answers]

    reports = [response.json() for response in responses]
    for response, report in zip(responses, reports, strict=True):
        assert response.status_code == 200, response.text
        assert (report["status"], report["rows"], report["rejected"]) == ("applied", ROWS, 0)
    # Every barcode created by exactly one of them; the shared ones found unchanged by the rest.
    assert sum(r["created"] for r in reports) == DISTINCT
    assert sum(r["updated"] for r in reports) == 0
    assert sum(r["unchanged"] for r in reports) == len(files) * ROWS - DISTINCT
    assert product_count(own_database) == DISTINCT
    # They did overlap: each one started before any of them had finished.
    [(last_start, first_end)] = query(
        own_database, "SELECT max(started_at), min(finished_at) FROM imports"
    )
    assert last_start < first_end
    assert query(own_database, "SELECT count(*) FROM imports WHERE status = 'applied'") == [(4,)]
    assert_nothing_running(own_database)
