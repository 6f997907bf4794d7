"""A database that goes away and comes back: the API answers 503 with Retry-After meanwhile,
writes nothing, and serves again without a restart; the CLI says so in one line."""

from __future__ import annotations

import time

import httpx

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings
from tests.conftest import PASSWORD, run_cli, serve
from tests.outages import outage_database

CSV = b"barcode,name,price,quantity\n1,A,1.50,2\n2,B,2.50,3\n"


def _server(settings: Settings) -> str:
    assert settings.database_url is not None
    return settings.database_url


async def _login(client: httpx.AsyncClient) -> dict[str, str]:
    await client.post("/users", json={"username": "olga", "password": PASSWORD})
    token = await client.post("/auth", data={"username": "olga", "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def test_requests_during_an_outage_are_503_and_the_service_recovers(
    settings: Settings,
) -> None:
    async with outage_database(_server(settings)) as outage:
        app = create_app(Container(settings.with_values(database_url=outage.url)))
        async with serve(app) as client:
            headers = await _login(client)
            assert (await client.get("/products", headers=headers)).status_code == 200

            await outage.cut()
            for response in (
                await client.get("/products", headers=headers),
                await client.put("/products", files={"file": ("p.csv", CSV)}, headers=headers),
            ):
                assert response.status_code == 503, response.text
                assert int(response.headers["Retry-After"]) >= 1
                assert response.headers["content-type"].startswith("application/problem+json")
                assert "database is unavailable" in response.json()["detail"]
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["database"] == "unavailable"

            await outage.restore()
            # Back without restarting ekimo: the first request after the outage is served.
            assert (await client.get("/health")).status_code == 200
            listed = await client.get("/products", headers=headers)
            assert listed.status_code == 200, listed.text
            assert listed.json()["total"] == 0  # the upload cut by the outage wrote nothing
            imported = await client.put(
                "/products", files={"file": ("p.csv", CSV)}, headers=headers
            )
            assert imported.status_code == 200, imported.text
            assert imported.json()["created"] == 2


def test_the_cli_says_the_database_is_unavailable_without_a_traceback(
    cli_env: dict[str, str],
) -> None:
    # A port nobody listens on: the database cannot be reached at all.
    env = {**cli_env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/ekimo"}
    started = time.monotonic()
    result = run_cli(env, "sync")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    # The answer is the last line (the PostgreSQL queue's pool logs its failed attempts first).
    assert "database is unavailable" in result.stderr.strip().splitlines()[-1], result.stderr
    assert time.monotonic() - started < 60
