"""GET /sync/status when many products are pending (issue 16): exact up to a limit, then the
planner's estimate, flagged `pending_exact: false`; the count reads the pending index only."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from ekimo.container import Container
from ekimo.sync import service
from ekimo.sync.service import COUNT_PENDING_UP_TO
from tests.sync.conftest import insert_products


async def _status(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/sync/status", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_pending_is_exact_up_to_the_limit_then_a_flagged_estimate(
    container: Container,
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "EXACT_PENDING_LIMIT", 20)
    await insert_products(container, 20)
    at_limit = await _status(client, auth_headers)
    assert (at_limit["pending"], at_limit["pending_exact"]) == (20, True)

    await insert_products(container, 80, start=21)
    async with container.engine.connect() as conn:
        await conn.execute(text("ANALYZE pending_products"))
        await conn.commit()
    above = await _status(client, auth_headers)
    assert above["pending_exact"] is False
    assert 90 <= above["pending"] <= 110  # the statistics on the state: close to the 100


async def test_an_estimate_is_never_below_what_was_counted(
    container: Container,
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Statistics not yet analyzed can expect fewer products than were just counted."""
    outdated = text("""SELECT '[{"Plan": {"Plan Rows": 0}}]'""")
    monkeypatch.setattr(service, "ESTIMATE_PENDING", outdated)
    monkeypatch.setattr(service, "EXACT_PENDING_LIMIT", 5)
    await insert_products(container, 30)

    status = await _status(client, auth_headers)

    assert (status["pending"], status["pending_exact"]) == (6, False)


async def test_the_pending_count_reads_only_the_pending_table(container: Container) -> None:
    await insert_products(container, 20_000)
    async with container.engine.connect() as conn:
        await conn.execute(text("DELETE FROM pending_products WHERE product_id % 100 > 0"))
        await conn.commit()
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE products, pending_products"))
        explained = f"EXPLAIN (FORMAT JSON) {COUNT_PENDING_UP_TO.text}"
        plan: Any = (await conn.execute(text(explained), {"limit": 10_001})).scalar_one()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    # The pending rows carry the barcode and version the rejections are matched on.
    assert _relations(plan[0]["Plan"]) == {"pending_products", "sync_rejections"}, plan


def _relations(plan: dict[str, Any]) -> set[str]:
    found = {plan["Relation Name"]} if "Relation Name" in plan else set[str]()
    for child in plan.get("Plans", []):
        found |= _relations(child)
    return found
