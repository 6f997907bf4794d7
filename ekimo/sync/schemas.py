"""What the sync API answers."""

from __future__ import annotations

from datetime import datetime

import msgspec

from ekimo.sync.models import SyncRun


class SyncRunOut(msgspec.Struct):
    id: int
    status: str
    trigger: str
    pending_at_start: int
    sent: int
    acknowledged: int
    rejected: int
    failed: int
    retries: int
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None

    @classmethod
    def of(cls, run: SyncRun) -> SyncRunOut:
        return cls(
            id=run.id,
            status=run.status,
            trigger=run.trigger,
            pending_at_start=run.pending_at_start,
            sent=run.sent,
            acknowledged=run.acknowledged,
            rejected=run.rejected,
            failed=run.failed,
            retries=run.retries,
            error=run.error,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_ms=run.duration_ms,
        )


class SyncRunPage(msgspec.Struct):
    items: list[SyncRunOut]
    total: int
    limit: int
    offset: int


class SyncStatus(msgspec.Struct):
    pending: int
    last_run: SyncRunOut | None


class SyncJobAccepted(msgspec.Struct):
    job_id: str
