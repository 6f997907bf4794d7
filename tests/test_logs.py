"""LOG_FORMAT=json for a full flow on a real `ekimo serve` (register, log in, an API key, an
upload with a bad row, a sync through the worker): one JSON object per line, each request's
lines under the id its client saw, the upload's id in its `imports` row and the sync job's id
on the worker's lines; and no secret anywhere in the output."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ekimo.container import Container
from ekimo.logs import configure_logging, mask_also
from ekimo.settings import Settings
from tests.conftest import PASSWORD, TEST_SECRET
from tests.faults.ekimo_process import STOP_SECONDS, bytecode_cached, served
from tests.sync.fake_api import FakeApi

DATABASE_PASSWORD = "db-password-never-logged"  # trust authentication ignores it
SYNC_PASSWORD = "sync-password-never-logged"
CSV = (
    b"name,price,quantity,last_updated,barcode\n"
    b"Pen,1.50,3,2026-01-01T00:00:00Z,0000000000017\n"
    b"Bad,not a price,3,2026-01-01T00:00:00Z,0000000000024\n"
)


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, at, host = rest.partition("@")
    return f"{scheme}://{user}:{password}@{host}" if at and ":" not in user else url


async def test_json_logs_of_a_full_flow_are_correlated_and_hold_no_secret(
    cli_env: dict[str, str],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    container: Container,
    fake_api: FakeApi,
) -> None:
    env = {
        **cli_env,
        "DATABASE_URL": with_password(cli_env["DATABASE_URL"], DATABASE_PASSWORD),
        "LOG_FORMAT": "json",
        "EKIMO_QUEUE_NAME": cli_env["EKIMO_QUEUE_NAME"] + "-logs",
        "SYNC_BASE_URL": fake_api.url,
        "SYNC_USERNAME": "ekimo",
        "SYNC_PASSWORD": SYNC_PASSWORD,
    }
    env = bytecode_cached(env, tmp_path_factory.getbasetemp() / "pycache")
    seen: dict[str, str] = {}  # what each request was, by the id its client saw
    with served(env, tmp_path) as api:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            account = {"username": "logger", "password": PASSWORD}
            registered = await http.post("/users", json=account)
            seen[registered.headers["x-request-id"]] = "register"
            login = await http.post("/auth", data=account)
            seen[login.headers["x-request-id"]] = "login"
            token = login.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            created = await http.post(
                "/api-keys", json={"name": "robot", "role": "viewer"}, headers=headers
            )
            assert created.status_code == 201, created.text
            key = created.json()["secret"]
            listed = await http.get("/products", headers={"Authorization": f"Bearer {key}"})
            assert listed.status_code == 200, listed.text

            upload = await http.put(
                "/products",
                params={"on_error": "skip"},
                files={"file": ("products.csv", CSV)},
                headers={**headers, "X-Request-ID": "upload-42"},
            )
            assert upload.status_code == 200, upload.text
            assert upload.headers["x-request-id"] == "upload-42"
            refused = await http.get("/products/99", headers={"X-Request-ID": "bad id"})
            assert refused.json()["request_id"] == refused.headers["x-request-id"] != "bad id"

            sync = await http.post("/sync", headers={**headers, "X-Request-ID": "sync-7"})
            assert sync.status_code == 202, sync.text
            deadline = time.monotonic() + 30
            while True:
                runs = (await http.get("/sync/runs", headers=headers)).json()["items"]
                if runs and runs[0]["status"] != "running":
                    break
                assert time.monotonic() < deadline, f"the sync run did not end: {runs}"
                await asyncio.sleep(0.1)
            assert runs[0]["status"] == "succeeded", runs
        assert api.stop(signal.SIGTERM, STOP_SECONDS) == 0, api.output

    lines = [line for line in api.output.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all(isinstance(e, dict) for e in events)
    for event in events:
        assert {"time", "level", "logger", "message", "request_id"} <= event.keys(), event

    by_request: dict[str | None, list[dict[str, Any]]] = {}
    for event in events:
        by_request.setdefault(event["request_id"], []).append(event)
    for request_id in seen:
        assert any(e["logger"] == "ekimo.access" for e in by_request[request_id]), request_id
    upload_events = by_request["upload-42"]
    assert any(e.get("path") == "/products" and e.get("status") == 200 for e in upload_events)
    imported = [e for e in upload_events if "import_id" in e]
    assert imported, upload_events
    assert (imported[0]["rows"], imported[0]["rows_rejected"]) == (2, 1)
    assert any(e.get("run_id") and e.get("status") == "succeeded" for e in by_request["sync-7"])
    async with container.engine.connect() as conn:
        stored = await conn.exec_driver_sql("SELECT request_id FROM imports")
        assert stored.scalars().all() == ["upload-42"]

    output = api.output
    for secret in (PASSWORD, token, key, TEST_SECRET, DATABASE_PASSWORD, SYNC_PASSWORD):
        assert secret not in output


def test_a_secret_known_only_after_start_is_masked_too(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The embedded mode reads or makes its signing key when the container starts, after
    logging was configured: from then on it is masked like the configured ones."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(settings.with_values(log_format="text"))
        made_at_start = "embedded-signing-key-" + "k" * 24
        logging.getLogger("ekimo.test").warning("before: %s", made_at_start)
        mask_also(made_at_start)
        logging.getLogger("ekimo.test").warning("after: %s and %s", made_at_start, TEST_SECRET)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert any(made_at_start in line for line in lines if "before:" in line)
    after = next(line for line in lines if "after:" in line)
    assert made_at_start not in after
    assert TEST_SECRET not in after
    assert after.endswith("after: *** and ***"), after
