"""The sync job: run by the SAQ cron schedule and queued by `POST /sync`."""

from __future__ import annotations

from typing import Any

from saq import CronJob, Queue
from saq.types import Context, Function

from ekimo import request_ids
from ekimo.job_worker import container_of
from ekimo.settings import Settings
from ekimo.sync.errors import SyncAlreadyQueued
from ekimo.sync.service import SyncService

# Far above one run, slow receivers and retries included: only a hung run reaches it.
SYNC_JOB_TIMEOUT = 3600


async def sync_products(ctx: Context, *, trigger: str = "schedule") -> dict[str, Any]:
    """One sync run; a run already going on (anywhere) makes this one `skipped`."""
    container = container_of(ctx)
    summary = await SyncService(container).run(trigger)
    return summary.as_dict()


async def queue_sync(queue: Queue, trigger: str) -> str:
    """Enqueue a sync run for the worker; returns the job id."""
    job = await queue.enqueue(
        sync_products.__qualname__,
        trigger=trigger,
        timeout=SYNC_JOB_TIMEOUT,
        meta=request_ids.job_meta(),
    )
    if job is None:  # SAQ refuses a duplicate job key; none is set, so this is a safeguard
        raise SyncAlreadyQueued()
    return job.id


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
