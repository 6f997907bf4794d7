"""The catalog's figures for GET /metrics: products by state, pending (a row in
`pending_products`) or synced, without counting a catalog of millions on every scrape."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from ekimo.container import Container
from ekimo.metrics import Figure

# Beyond this many pending products the count stops, and the table's estimate is used.
PENDING_CAP = 100_000

# The total is the planner's estimate (pg_class.reltuples, kept by autovacuum's ANALYZE; counted
# up to the cap when the table was never analyzed); pending is counted exactly up to the cap.
CATALOG = text(
    """
    SELECT pending.n AS pending,
           coalesce(pending_table.reltuples, -1) AS pending_estimate,
           CASE WHEN c.reltuples >= 0 THEN c.reltuples
                ELSE (SELECT count(*) FROM (SELECT FROM products LIMIT :cap) a) END AS total
    FROM pg_class c
    CROSS JOIN (
        SELECT count(*) AS n FROM (SELECT FROM pending_products LIMIT :cap) p
    ) pending
    LEFT JOIN pg_class pending_table ON pending_table.oid = to_regclass('pending_products')
    WHERE c.oid = to_regclass('products')
    """
)


async def catalog_figures(container: Container) -> Sequence[Figure]:
    async with container.read_session() as session:
        row = (await session.execute(CATALOG, {"cap": PENDING_CAP})).one()
    pending = int(row.pending)
    if pending >= PENDING_CAP:
        pending = max(pending, int(row.pending_estimate))
    total = max(int(row.total), pending)
    return [
        Figure(
            "ekimo_products",
            "Products of the catalog by state: pending (changed since it was last synced) or "
            f"synced. The total is PostgreSQL's estimate; pending is exact up to {PENDING_CAP}.",
            "gauge",
            ("state",),
            {("pending",): float(pending), ("synced",): float(total - pending)},
        )
    ]
