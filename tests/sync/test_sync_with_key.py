"""SYNC_API_KEY: the sender sends the key as its bearer and never logs in (POST /auth)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ekimo import db
from ekimo.container import Container
from ekimo.settings import Settings
from tests.conftest import PASSWORD, ROOT
from tests.sync.conftest import (
    create_account,
    insert_products,
    make_service,
    pending,
    served_ekimo,
)
from tests.sync.fake_api import FakeApi, Reply

KEY = "ekimo_" + "k" * 43
PRODUCT_COLUMNS = "SELECT barcode, name, price, quantity, last_updated FROM products"


async def test_the_key_is_the_bearer_and_auth_is_never_called(
    container: Container, sync_settings: Settings, fake_api: FakeApi
) -> None:
    codes = await insert_products(container, 25)
    fake_api.tokens.add(KEY)
    # Username and password are set too: the key wins.
    settings = sync_settings.with_values(sync_api_key=KEY)

    summary = await make_service(container, settings).run("test")

    assert summary.status == "succeeded", summary
    assert sorted(fake_api.delivered_barcodes()) == codes
    assert fake_api.auth_calls == 0
    assert [r.path for r in fake_api.requests] == ["/products"] * 3  # batches of 10
    assert {r.headers["authorization"] for r in fake_api.requests} == {f"Bearer {KEY}"}
    assert await pending(container) == set()


async def test_a_refused_key_aborts_at_once(
    container: Container, sync_settings: Settings, fake_api: FakeApi
) -> None:
    await insert_products(container, 25)  # the fake API does not know KEY: 401

    summary = await make_service(
        container, sync_settings.with_values(sync_api_key=KEY), concurrency=1
    ).run("test")

    assert summary.status == "failed"
    assert summary.error is not None
    assert "refuses SYNC_API_KEY (401)" in summary.error
    # Neither retried nor replaced by a login: one request, then the run stopped.
    assert [r.path for r in fake_api.requests] == ["/products"]
    assert len(await pending(container)) == 25


async def test_a_key_without_the_right_role_aborts(
    container: Container, sync_settings: Settings, fake_api: FakeApi
) -> None:
    await insert_products(container, 5)
    fake_api.tokens.add(KEY)
    fake_api.faults.append(Reply(status=403))

    summary = await make_service(
        container, sync_settings.with_values(sync_api_key=KEY), concurrency=1
    ).run("test")

    assert summary.status == "failed"
    assert summary.error is not None
    assert "forbids SYNC_API_KEY" in summary.error
    assert "receiver or editor role" in summary.error
    assert fake_api.auth_calls == 0


@pytest.fixture
async def receiver_engine(receiver_settings: Settings) -> AsyncIterator[AsyncEngine]:
    assert receiver_settings.database_url is not None
    engine = create_async_engine(db.asyncpg_url(receiver_settings.database_url))
    async with engine.begin() as conn:
        await conn.exec_driver_sql("TRUNCATE api_keys, audit_events RESTART IDENTITY CASCADE")
    yield engine
    await engine.dispose()


async def receiver_key(url: str) -> tuple[int, str]:
    """An admin on the receiving ekimo, and a `receiver` key of it: (key id, secret)."""
    await create_account(url, "owner", PASSWORD)
    async with httpx.AsyncClient(base_url=url) as http:
        login = await http.post("/auth", data={"username": "owner", "password": PASSWORD})
        assert login.status_code == 200, login.text
        created = await http.post(
            "/api-keys",
            json={"name": "ekimo sender", "role": "receiver"},
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
        assert created.status_code == 201, created.text
    body = created.json()
    return body["api_key"]["id"], body["secret"]


async def ekimo_sync(env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ekimo",
        "sync",
        "--json",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_ekimo_sync_into_another_ekimo_with_a_receiver_key(
    container: Container,
    cli_env: dict[str, str],
    receiver_settings: Settings,
    receiver_engine: AsyncEngine,
) -> None:
    await insert_products(container, 120)
    async with served_ekimo(receiver_settings) as url:
        key_id, secret = await receiver_key(url)
        env = {
            **cli_env,
            "SYNC_BASE_URL": url,
            "SYNC_API_KEY": secret,
            # Wrong on purpose: a login would fail the run and leave a failed-login event.
            "SYNC_USERNAME": "owner",
            "SYNC_PASSWORD": "not the password",
        }

        code, out, err = await ekimo_sync(env)

        assert code == 0, err
        summary = json.loads(out)
        assert (summary["status"], summary["acknowledged"]) == ("succeeded", 120), summary
        assert await pending(container) == set()
        async with receiver_engine.connect() as rx, container.engine.connect() as tx:
            received = {tuple(r) for r in await rx.execute(text(PRODUCT_COLUMNS))}
            sent = {tuple(r) for r in await tx.execute(text(PRODUCT_COLUMNS))}
        assert received == sent
        assert len(received) == 120

        # The receiver saw the key, never a login.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:
            async with receiver_engine.connect() as rx:
                used = await rx.execute(
                    text("SELECT last_used_at FROM api_keys WHERE id = :id"), {"id": key_id}
                )
                if used.scalar_one() is not None:
                    break
            assert loop.time() < deadline, "the receiver never recorded the key's use"
            await asyncio.sleep(0.05)
        async with receiver_engine.connect() as rx:
            failed_logins = await rx.execute(
                text("SELECT count(*) FROM audit_events WHERE action = 'auth.login_failed'")
            )
            assert failed_logins.scalar_one() == 0
