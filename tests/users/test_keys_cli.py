"""`ekimo keys create|list|revoke`, run as the real command against this run's database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from ekimo.container import Container
from tests.conftest import register_and_login, run_cli
from tests.users.test_api_keys import REVOCATION_SECONDS, audit_events, bearer, refused_after

RECEIVED = {
    "barcode": "0000000000042",
    "name": "Pushed by a partner",
    "price": "3.10",
    "quantity": "1",
    "last_updated": "2025-01-02T03:04:05Z",
}


async def test_create_use_list_and_revoke(
    cli_env: dict[str, str], client: httpx.AsyncClient, container: Container
) -> None:
    await register_and_login(client)  # alice, the admin

    created = await asyncio.to_thread(
        run_cli,
        cli_env,
        "keys",
        "create",
        "partner",
        "--user",
        "alice",
        "--role",
        "receiver",
        "--expires-days",
        "30",
    )

    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("ekimo_")
    assert "\n" not in secret  # the secret alone: KEY=$(ekimo keys create ...)
    assert "partner" in created.stderr
    assert "shown only this once" in created.stderr
    key = bearer(secret)
    sent = await client.post("/products", json={"products": [RECEIVED]}, headers=key)
    assert sent.status_code == 201, sent.text
    assert (await client.get("/products", headers=key)).status_code == 403  # a receiver's

    async with container.engine.connect() as conn:
        row = (await conn.execute(text("SELECT id, expires_at FROM api_keys"))).one()
    assert abs(row.expires_at - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    made = await audit_events(container, "api_key.created")
    assert [(e["target"], e["details"]["via"]) for e in made] == [(f"api_key:{row.id}", "cli")]

    listed = await asyncio.to_thread(run_cli, cli_env, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    header, line = listed.stdout.splitlines()
    assert header.split()[:5] == ["id", "name", "role", "owner", "prefix"]
    assert line.split()[:5] == [str(row.id), "partner", "receiver", "alice", secret[:12]]
    assert secret not in listed.stdout

    revoked = await asyncio.to_thread(run_cli, cli_env, "keys", "revoke", str(row.id))
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    # The app has the key cached; the CLI is another process that cannot tell it.
    assert await refused_after(client, key, working=403) < REVOCATION_SECONDS
    assert [e["target"] for e in await audit_events(container, "api_key.revoked")] == [
        f"api_key:{row.id}"
    ]

    again = await asyncio.to_thread(run_cli, cli_env, "keys", "revoke", str(row.id))
    assert again.returncode == 1
    assert f"no API key {row.id}" in again.stderr
    empty = await asyncio.to_thread(run_cli, cli_env, "keys", "list")
    assert (empty.returncode, empty.stdout.strip()) == (0, "no API keys")


async def test_create_refuses_what_the_api_refuses(
    cli_env: dict[str, str], client: httpx.AsyncClient, container: Container
) -> None:
    await register_and_login(client)  # the admin
    await register_and_login(client, "bob")  # an editor

    above = await asyncio.to_thread(
        run_cli, cli_env, "keys", "create", "x", "--user", "bob", "--role", "admin"
    )
    assert above.returncode == 2
    assert "cannot create a key with the admin role" in above.stderr

    nobody = await asyncio.to_thread(
        run_cli, cli_env, "keys", "create", "x", "--user", "nobody", "--role", "viewer"
    )
    assert nobody.returncode == 1
    assert "no account 'nobody'" in nobody.stderr

    bad_days = await asyncio.to_thread(
        run_cli,
        cli_env,
        "keys",
        "create",
        "x",
        "--user",
        "bob",
        "--role",
        "viewer",
        "--expires-days",
        "0",
    )
    assert bad_days.returncode == 2

    async with container.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM api_keys"))).scalar_one() == 0
