"""GET /health?verbose=true: the queue's jobs, the migration against the code's head and the last
sync run, for admins only; plain /health keeps its contract (public, status/database/queue)."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from ekimo.container import Container
from ekimo.health import code_heads
from tests.conftest import register_and_login

PROBLEM = "application/problem+json"
PLAIN = {"status": "ok", "database": "ok", "queue": "ok"}


async def account(
    client: httpx.AsyncClient, container: Container, name: str, role: str
) -> dict[str, str]:
    headers = await register_and_login(client, name)
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = :role WHERE lower(username) = :name"),
            {"role": role, "name": name},
        )
    return headers


async def test_plain_health_is_unchanged_and_needs_no_token(client: httpx.AsyncClient) -> None:
    for params, headers in (
        ({}, {}),
        ({"verbose": "false"}, {}),
        ({}, {"Authorization": "Bearer not-a-token"}),
    ):
        response = await client.get("/health", params=params, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == PLAIN


async def test_an_admin_sees_the_queue_the_migration_and_the_last_sync(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await register_and_login(client, "root")  # the first account is an admin

    before = await client.get("/health", params={"verbose": "true"}, headers=admin)
    assert before.status_code == 200, before.text
    assert before.json()["last_sync"] is None

    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO sync_runs (status, trigger, started_at, finished_at, created_at, "
                "updated_at) VALUES ('partial', 'schedule', now() - interval '2 minutes', "
                "now() - interval '1 minute', now(), now())"
            )
        )
    response = await client.get("/health", params={"verbose": "true"}, headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in PLAIN} == PLAIN
    # The run's queue as SAQ counts it (earlier tests may have left jobs in it).
    states = ("queued", "active", "incomplete")
    assert body["queue_jobs"] == {s: await container.queue.count(s) for s in states}
    (head,) = code_heads()
    assert body["migration"] == {"revision": head, "head": head, "at_head": True}
    last = body["last_sync"]
    assert (last["status"], last["trigger"]) == ("partial", "schedule")
    assert last["finished_at"] is not None
    assert 55 <= last["age_seconds"] < 120


async def test_a_database_behind_the_code_is_shown(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await register_and_login(client, "root")
    (head,) = code_heads()
    async with container.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0001_users'"))
    try:
        response = await client.get("/health", params={"verbose": "true"}, headers=admin)
    finally:
        async with container.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    # Requests would fail on the missing tables: the plain check says so too.
    assert response.status_code == 503, response.text
    assert response.json()["database"] == "not migrated"
    migration = response.json()["migration"]
    assert migration == {"revision": "0001_users", "head": head, "at_head": False}


async def test_the_details_need_an_admin(client: httpx.AsyncClient, container: Container) -> None:
    await register_and_login(client, "root")
    editor = await account(client, container, "eddie", "editor")
    viewer = await account(client, container, "vera", "viewer")

    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        refused = await client.get("/health", params={"verbose": "true"}, headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"].startswith(PROBLEM)
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "queue_jobs" not in refused.text

    for role, headers in (("editor", editor), ("viewer", viewer)):
        refused = await client.get("/health", params={"verbose": "true"}, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith(PROBLEM)
        detail = refused.json()["detail"]
        assert "needs the admin role" in detail
        assert f"has the {role} role" in detail


async def test_an_admin_api_key_sees_the_details(client: httpx.AsyncClient) -> None:
    admin = await register_and_login(client, "root")
    created = await client.post(
        "/api-keys", json={"name": "monitoring", "role": "admin"}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = {"Authorization": f"Bearer {created.json()['secret']}"}
    response = await client.get("/health", params={"verbose": "true"}, headers=key)
    assert response.status_code == 200, response.text
    assert "migration" in response.json()
