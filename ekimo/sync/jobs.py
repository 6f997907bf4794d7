"""The sync job: run by the SAQ cron schedule and by `POST /sync`."""

from __future__ import annotations

from typing import Any, cast

from saq import CronJob
from saq.types import Context, Function

from ekimo.container import Container
from ekimo.settings import Settings
from ekimo.sync.service import SyncService

# Far above one run (100,000 products take seconds; slow receivers and retries take longer).
SYNC_JOB_TIMEOUT = 3600


async def sync_products(ctx: Context, *, trigger: str = "schedule") -> dict[str, Any]:
    """One sync run; a run already going on (anywhere) makes this one `skipped`."""
    container = cast(Container, ctx["container"])  # pyright: ignore[reportGeneralTypeIssues]
    summary = await SyncService(container).run(trigger)
    return summary.as_dict()


functions: list[Function[Any]] = [sync_products]


def cron_jobs(settings: Settings) -> list[CronJob[Any]]:
    return [
        CronJob(
            sync_products,
            cron=f"*/{settings.sync_interval_minutes} * * * *",
            unique=True,
            timeout=SYNC_JOB_TIMEOUT,
            kwargs={"trigger": "schedule"},
        )
    ]
