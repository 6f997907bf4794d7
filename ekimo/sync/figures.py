"""The sync's figures: for GET /metrics (runs by status, the last success, the age of the oldest
change still waiting) and for GET /health?verbose=true (the last run)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from ekimo.container import Container
from ekimo.metrics import Figure

# How a run ends (`SyncService`); `running` is not an end (a counter only grows).
FINISHED = ("succeeded", "partial", "failed", "skipped")

RUNS = text(
    """
    SELECT status, count(*) AS runs,
           extract(epoch FROM max(coalesce(finished_at, started_at))) AS last_at
    FROM sync_runs
    WHERE status <> 'running'
    GROUP BY status
    """
)

# The oldest change the sync still has to send: pending, and not a version the external API
# refused (those wait for the product to change, not for the sync). Materialized: read from
# the pending products, never by walking an index on updated_at past the synced ones; its cost
# grows with the pending products only.
OLDEST_PENDING = text(
    """
    WITH waiting AS MATERIALIZED (
        SELECT p.updated_at FROM pending_products s JOIN products p ON p.id = s.product_id
        WHERE NOT EXISTS (
            SELECT 1 FROM sync_rejections r WHERE r.barcode = p.barcode AND r.version = s.version)
    )
    SELECT coalesce(extract(epoch FROM now() - min(updated_at)), 0) FROM waiting
    """
)

LAST_RUN = text(
    """
    SELECT id, status, trigger, started_at, finished_at,
           extract(epoch FROM now() - coalesce(finished_at, started_at)) AS age
    FROM sync_runs
    ORDER BY id DESC
    LIMIT 1
    """
)


async def sync_figures(container: Container) -> Sequence[Figure]:
    async with container.read_session() as session:
        runs = (await session.execute(RUNS)).all()
        oldest = float((await session.execute(OLDEST_PENDING)).scalar_one())
    by_status = {(status,): 0.0 for status in FINISHED}
    last_success = 0.0
    for row in runs:
        by_status[(str(row.status),)] = float(row.runs)
        if row.status == "succeeded" and row.last_at is not None:
            last_success = float(row.last_at)
    return [
        Figure(
            "ekimo_sync_runs_total",
            "Sync runs that ended, by status (succeeded, partial, failed, skipped).",
            "counter",
            ("status",),
            by_status,
        ),
        Figure(
            "ekimo_sync_last_success_timestamp_seconds",
            "When the last successful sync run ended (Unix time; 0: never).",
            "gauge",
            values={(): last_success},
        ),
        Figure(
            "ekimo_sync_oldest_pending_seconds",
            "Age of the oldest change not yet synced (rejected versions left out; 0: none).",
            "gauge",
            values={(): max(oldest, 0.0)},
        ),
    ]


async def last_run(container: Container) -> dict[str, object] | None:
    """The last sync run (any status, `running` included), and how long ago it ended (or began,
    while it runs); None before the first."""
    async with container.read_session() as session:
        row = (await session.execute(LAST_RUN)).one_or_none()
    if row is None:
        return None
    return {
        "id": int(row.id),
        "status": str(row.status),
        "trigger": str(row.trigger),
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at is not None else None,
        "age_seconds": round(float(row.age), 3),
    }
