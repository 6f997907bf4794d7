"""The sync job: run by the SAQ cron schedule and queued by `POST /sync` and the console's
Sync now (`start_sync`)."""

from __future__ import annotations

from typing import Any

from saq import CronJob, Queue
from saq.types import Context, Function

from ekimo import request_ids
from ekimo.container import Container
from ekimo.job_worker import container_of
from ekimo.settings import Settings
from ekimo.sync.errors import SyncAlreadyQueued
from ekimo.sync.service import SyncService
from ekimo.users import audit
from ekimo.users.audit import Action
from ekimo.users.principals import Principal

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


async def start_sync(container: Container, actor: Principal, trigger: str) -> str:
    """A sync someone asked for (POST /sync, the console's Sync now): queued for the worker and
    recorded in the audit trail under `actor`. Returns the job id."""
    job_id = await queue_sync(container.queue, trigger)
    await audit.record(container, Action.SYNC_TRIGGERED, actor=actor, details={"job_id": job_id})
    return job_id


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
