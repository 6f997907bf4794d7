"""The SAQ worker that carries the container, for the jobs of every domain."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from saq import Worker
from saq.types import Context

from ekimo import request_ids
from ekimo.container import Container

logger = logging.getLogger(__name__)

# After their jobs finish, SAQ marks them complete: a short step not to be cancelled midway.
JOB_BOOKKEEPING_SECONDS = 5.0


class ContainerWorker(Worker[Any]):
    """A SAQ worker that carries the container its jobs use (see `container_of`), and stops
    gracefully: no new job is taken, running jobs get the container's shutdown grace, then
    SAQ cancels what is left and puts those jobs back on the queue."""

    def __init__(self, container: Container, **options: Any) -> None:
        # `stop` waits for the jobs itself and cancels what is left before SAQ's own stop, whose
        # grace then only sees finished tasks (it would wait for its idle loops, and warn).
        super().__init__(
            container.queue,
            shutdown_grace_period_s=1,
            before_process=[_bind_request_id],
            **options,
        )
        self.container = container

    async def stop(self) -> None:
        shutdown = self.container.shutdown
        self.event.set()  # SAQ takes no new job once its event is set
        jobs = dict(self.job_task_contexts)
        if jobs:
            logger.info("waiting up to %.0f s for %d job(s)", shutdown.remaining(), len(jobs))
            await asyncio.wait([c["task"] for c in jobs.values()], timeout=shutdown.remaining())
            deadline = time.monotonic() + JOB_BOOKKEEPING_SECONDS
            finished = [job for job, c in jobs.items() if c["task"].done()]
            while any(job in self.job_task_contexts for job in finished):
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.05)
        # Jobs still running are cancelled: SAQ puts them back on the queue.
        leftover = list(self.tasks)
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=self._cancellation_hard_deadline_s)
        await super().stop()

    @property
    def stopping(self) -> bool:
        return self.event.is_set()


def worker_stopping(ctx: Context) -> bool:
    """True when the job's worker is stopping: a job cancelled now goes back on the queue."""
    worker = ctx["worker"]
    return isinstance(worker, ContainerWorker) and worker.stopping


def container_of(ctx: Context) -> Container:
    """The container of the worker running a job: SAQ hands a job only its context."""
    worker = ctx["worker"]
    if not isinstance(worker, ContainerWorker):
        raise TypeError("an ekimo job runs on a ContainerWorker")
    return worker.container


async def _bind_request_id(ctx: Context) -> None:
    # The job's task is made after this, in this context: its log lines carry the id too.
    job = ctx.get("job")
    request_ids.bind_job(job.meta if job is not None else None)
