"""GET /metrics: Prometheus' text format, open to everyone, off with METRICS=false; HTTP requests
by route template; the business figures read from the database (the same from every process)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.products.figures import PENDING_CAP
from ekimo.settings import Settings
from ekimo.sync.client import RetryPolicy
from ekimo.sync.service import SyncService
from tests.conftest import register_and_login, serve
from tests.faults.ekimo_process import Served, bytecode_cached
from tests.sync.fake_api import FakeApi

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# One bad row (a price that is no number), skipped: 3 created, 1 rejected.
CSV = (
    b"barcode,name,price,quantity\n"
    b"1001,Apple,1.50,10\n"
    b"1002,Pear,2.00,5\n"
    b"1003,Plum,oops,1\n"
    b"1004,Fig,3.25,2\n"
)
# The same file again with one change: 1 updated, 2 unchanged, 1 rejected.
CSV_AGAIN = CSV.replace(b"Apple", b"Green apple")


def samples(exposition: str, prefix: str = "ekimo_") -> Samples:
    """Every sample whose name starts with `prefix`: (name, sorted labels) -> value."""
    found: Samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name.startswith(prefix):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(response.text)


def sync_service(container: Container, fake_api: FakeApi) -> SyncService:
    settings = container.settings.with_values(
        sync_base_url=fake_api.url, sync_username="ekimo", sync_password="secret"
    )
    return SyncService(container, settings=settings, policy=RetryPolicy(base_delay=0.01))


async def import_csv(client: httpx.AsyncClient, headers: dict[str, str], content: bytes) -> None:
    response = await client.put(
        "/products",
        files={"file": ("products.csv", content)},
        params={"on_error": "skip"},
        headers=headers,
    )
    assert response.status_code == 200, response.text


async def test_metrics_need_no_token_and_read_the_queue(
    client: httpx.AsyncClient, container: Container
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = await client.get("/metrics", headers=headers)
        assert response.status_code == 200, response.text
    found = samples(response.text)
    assert value(found, "ekimo_figures_up") == 1
    # The run's queue as SAQ counts it (earlier tests may have left jobs in it).
    for state in ("queued", "active", "incomplete"):
        assert value(found, "ekimo_queue_jobs", state=state) == await container.queue.count(state)
    # The process's own figures come along (prometheus-client's default collectors).
    assert any(name.startswith("process_") for name, _ in samples(response.text, "process_"))


async def test_an_import_and_a_sync_show_in_the_database_figures(
    client: httpx.AsyncClient, container: Container, fake_api: FakeApi
) -> None:
    headers = await register_and_login(client)
    await import_csv(client, headers, CSV)
    await import_csv(client, headers, CSV_AGAIN)
    dry = await client.put(
        "/products",
        files={"file": ("products.csv", CSV)},
        params={"dry_run": "true"},
        headers=headers,
    )
    assert dry.status_code in (200, 422), dry.text

    before = await scrape(client)
    assert value(before, "ekimo_products", state="pending") == 3
    assert value(before, "ekimo_products", state="synced") == 0
    assert value(before, "ekimo_imports_total", status="applied") == 2
    assert value(before, "ekimo_imports_total", status="failed") == 0
    assert value(before, "ekimo_imports_in_progress", status="queued") == 0
    # Dry runs write nothing: their rows are not counted.
    assert value(before, "ekimo_import_rows_total", result="created") == 3
    assert value(before, "ekimo_import_rows_total", result="updated") == 1
    assert value(before, "ekimo_import_rows_total", result="unchanged") == 2
    assert value(before, "ekimo_import_rows_total", result="rejected") == 2
    assert value(before, "ekimo_sync_runs_total", status="succeeded") == 0
    assert value(before, "ekimo_sync_last_success_timestamp_seconds") == 0
    assert value(before, "ekimo_sync_oldest_pending_seconds") > 0

    summary = await sync_service(container, fake_api).run("test")
    assert summary.status == "succeeded", summary

    # A new app (a restart, or another replica) reads the same database: nothing is lost.
    async with serve(create_app(container)) as other:
        after = await scrape(other)
    assert value(after, "ekimo_products", state="pending") == 0
    assert value(after, "ekimo_products", state="synced") == 3
    assert value(after, "ekimo_sync_runs_total", status="succeeded") == 1
    assert value(after, "ekimo_sync_runs_total", status="failed") == 0
    assert abs(value(after, "ekimo_sync_last_success_timestamp_seconds") - time.time()) < 60
    assert value(after, "ekimo_sync_oldest_pending_seconds") == 0
    assert value(after, "ekimo_imports_total", status="applied") == 2


async def test_the_database_figures_are_read_at_most_every_few_seconds(
    client: httpx.AsyncClient, container: Container
) -> None:
    first = await scrape(client)
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO sync_runs (status, trigger, started_at, finished_at, created_at, "
                "updated_at) VALUES ('failed', 'test', now(), now(), now(), now())"
            )
        )
    cached = await scrape(client)
    assert value(cached, "ekimo_sync_runs_total", status="failed") == 0
    assert value(first, "ekimo_sync_runs_total", status="failed") == 0
    async with serve(create_app(container)) as fresh:
        assert value(await scrape(fresh), "ekimo_sync_runs_total", status="failed") == 1


async def test_pending_products_are_counted_exactly_below_the_cap(
    client: httpx.AsyncClient, container: Container
) -> None:
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO products (barcode, name, price, quantity, last_updated, version, "
                "created_at, updated_at) "
                "SELECT g::text, 'P' || g, 1, 1, now(), 1, "
                "now(), now() - interval '1 hour' FROM generate_series(1, 100) g"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO pending_products (product_id, barcode, version, synced_version) "
                "SELECT id, barcode, 1, 0 FROM products WHERE barcode::int > 40"
            )
        )
        await conn.exec_driver_sql("ANALYZE products")  # the total becomes the estimate
    found = await scrape(client)
    assert value(found, "ekimo_products", state="pending") == 60 < PENDING_CAP
    assert value(found, "ekimo_products", state="synced") == 40
    assert 3600 <= value(found, "ekimo_sync_oldest_pending_seconds") < 3700


async def test_requests_are_counted_by_route_template(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    for code in ("4006381333931", "5012345678900"):
        response = await client.get(f"/products/{code}", headers=auth_headers)
        assert response.status_code == 404
    assert (await client.get("/products")).status_code == 401  # refused before any route runs
    assert (await client.get("/no/such/page/123")).status_code == 404

    response = await client.get("/metrics")
    found = samples(response.text, "ekimo_http_")
    routes = {dict(labels)["route"] for _, labels in found}
    assert not any("4006381333931" in route or "/no/such" in route for route in routes), routes
    (template,) = {r for r in routes if r.startswith("/products/{barcode")}
    counted = value(found, "ekimo_http_requests_total", route=template, method="GET", status="404")
    assert counted == 2
    timed = value(found, "ekimo_http_request_duration_seconds_count", route=template, method="GET")
    assert timed == 2
    assert value(found, "ekimo_http_requests_total", route="/products", method="GET", status="401")
    assert value(found, "ekimo_http_requests_total", route="unmatched", method="GET", status="404")


async def test_metrics_false_registers_no_route(settings: Settings) -> None:
    # Not started (no lifespan): routing answers a path no route has without the database.
    app = create_app(Container(settings.with_values(metrics=False)))
    transport = httpx.ASGITransport(app=app)  # pyright: ignore[reportArgumentType]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as http:
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert not any(route.path == "/metrics" for route in app.routes)


async def test_two_api_processes_on_one_database_report_the_same_figures(
    client: httpx.AsyncClient,
    container: Container,
    cli_env: dict[str, str],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    headers = await register_and_login(client)
    await import_csv(client, headers, CSV)
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO sync_runs (status, trigger, started_at, finished_at, created_at, "
                "updated_at) VALUES ('succeeded', 'test', now() - interval '1 minute', now(), "
                "now(), now())"
            )
        )
    env = bytecode_cached(
        {**cli_env, "EKIMO_QUEUE_NAME": cli_env["EKIMO_QUEUE_NAME"] + "-metrics"},
        tmp_path_factory.getbasetemp() / "pycache",
    )
    servers = [Served(env, tmp_path, "--no-worker") for _ in range(2)]
    try:
        for server in servers:
            server.wait_healthy()
        scraped: list[Samples] = []
        for server in servers:
            response = httpx.get(f"{server.url}/metrics", timeout=10)
            assert response.status_code == 200, response.text
            scraped.append(samples(response.text))
    finally:
        for server in servers:
            server.stop()
    first, second = scraped
    age = ("ekimo_sync_oldest_pending_seconds", ())
    # The age of the oldest pending change grows with the clock between the two scrapes.
    assert abs(first.pop(age) - second.pop(age)) < 5
    business = {k: v for k, v in first.items() if not k[0].startswith("ekimo_http_")}
    assert business == {k: v for k, v in second.items() if not k[0].startswith("ekimo_http_")}
    assert value(first, "ekimo_products", state="pending") == 3
    assert value(first, "ekimo_imports_total", status="applied") == 1
    assert value(first, "ekimo_import_rows_total", result="rejected") == 1
    assert value(first, "ekimo_sync_runs_total", status="succeeded") == 1


def test_api_processes_sharing_a_multiprocess_directory_report_their_sum(
    cli_env: dict[str, str], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = bytecode_cached(
        {
            **cli_env,
            "EKIMO_QUEUE_NAME": cli_env["EKIMO_QUEUE_NAME"] + "-metrics-n",
            "WEB_CONCURRENCY": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(shared),
        },
        tmp_path_factory.getbasetemp() / "pycache",
    )
    server = Served(env, tmp_path, "--no-worker")
    try:
        server.wait_healthy()
        # New connections, spread by the kernel over both processes' accepts.
        health = [httpx.get(f"{server.url}/health").status_code for _ in range(30)]
        assert set(health) == {200}
        totals: set[float] = set()
        for _ in range(4):
            response = httpx.get(f"{server.url}/metrics", timeout=10)
            found = samples(response.text, "ekimo_http_")
            totals.add(
                sum(
                    v
                    for (name, labels), v in found.items()
                    if name == "ekimo_http_requests_total" and ("route", "/health") in labels
                )
            )
    finally:
        server.stop()
    # Every scrape, whichever process answers it, counts every process's /health requests.
    (total,) = totals
    assert total >= 31  # and the readiness checks of `wait_healthy`
    assert {p.name.split("_")[0] for p in shared.iterdir()} >= {"counter", "histogram"}
