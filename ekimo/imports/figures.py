"""The import engine's figures for GET /metrics, from the `imports` table (one row per import:
a GROUP BY over it stays cheap)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from ekimo.container import Container
from ekimo.metrics import Figure

# How an import ends (`ImportService`, the queued imports' job); `queued` and `running` are not
# ends: a counter only grows, so those are a gauge of their own.
FINISHED = ("applied", "validated", "rejected", "failed")
IN_PROGRESS = ("queued", "running")
ROW_RESULTS = ("created", "updated", "unchanged", "rejected")

BY_STATUS = text(
    """
    SELECT status, count(*) AS imports,
           coalesce(sum(created) FILTER (WHERE NOT dry_run), 0) AS created,
           coalesce(sum(updated) FILTER (WHERE NOT dry_run), 0) AS updated,
           coalesce(sum(unchanged) FILTER (WHERE NOT dry_run), 0) AS unchanged,
           coalesce(sum(rejected) FILTER (WHERE NOT dry_run), 0) AS rejected
    FROM imports
    GROUP BY status
    """
)


async def import_figures(container: Container) -> Sequence[Figure]:
    async with container.read_session() as session:
        rows = (await session.execute(BY_STATUS)).all()
    finished = {(status,): 0.0 for status in FINISHED}
    in_progress = {(status,): 0.0 for status in IN_PROGRESS}
    results = dict.fromkeys(ROW_RESULTS, 0.0)
    for row in rows:
        status = str(row.status)
        if status in IN_PROGRESS:
            in_progress[(status,)] = float(row.imports)
            continue
        finished[(status,)] = float(row.imports)
        for result in ROW_RESULTS:
            results[result] += float(getattr(row, result))
    return [
        Figure(
            "ekimo_imports_total",
            "Imports that ended, by status (applied, validated: a dry run, rejected, failed).",
            "counter",
            ("status",),
            finished,
        ),
        Figure(
            "ekimo_imports_in_progress",
            "Imports not ended yet, by status (queued, running).",
            "gauge",
            ("status",),
            in_progress,
        ),
        Figure(
            "ekimo_import_rows_total",
            "Rows of the imports that ended, by result (dry runs left out: they write nothing).",
            "counter",
            ("result",),
            {(result,): value for result, value in results.items()},
        ),
    ]
