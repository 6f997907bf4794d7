"""The SAQ worker: job functions and cron jobs of every domain, built on the container."""

from __future__ import annotations

from typing import Any

from saq import Worker
from saq.types import Context

from ekimo.container import Container
from ekimo.imports import jobs as import_jobs
from ekimo.job_worker import ContainerWorker
from ekimo.sync import jobs as sync_jobs


def create_worker(
    container: Container, *, handle_signals: bool = True, schedule: bool = True
) -> Worker[Any]:
    """A worker whose jobs find the container with `container_of(ctx)`.

    `schedule=False` leaves out the cron jobs: the worker only runs what is queued
    (tests use it so a scheduled sync at a round minute cannot race the job they queue).
    """

    async def startup(_: Context) -> None:
        # Imports left `running` by a worker that died are failed now, not at the next sweep.
        await import_jobs.fail_orphaned_imports(container)

    saq_worker = ContainerWorker(
        container,
        functions=[*import_jobs.functions, *sync_jobs.functions],
        cron_jobs=[
            *import_jobs.cron_jobs(container.settings),
            *sync_jobs.cron_jobs(container.settings),
        ]
        if schedule
        else [],
        startup=startup,
        concurrency=4,
        # PostgreSQL queue: also poll, so a NOTIFY lost in a race never strands a job.
        # (Redis blocks on its list and ignores this.)
        poll_interval=1.0,
        # A job cancelled at the end of the shutdown grace records why (an import goes back to
        # `queued`): give that bookkeeping time before SAQ gives up on it.
        cancellation_hard_deadline_s=10.0,
    )
    if not handle_signals:
        # Its process owns SIGINT/SIGTERM (uvicorn in `ekimo serve`, the `worker` command) and
        # stops the worker itself, beginning the container's shutdown first.
        saq_worker.SIGNALS = []
    return saq_worker
