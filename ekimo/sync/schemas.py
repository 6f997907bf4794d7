"""What the sync API answers."""

from __future__ import annotations

from datetime import datetime

import msgspec


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


class SyncStatus(msgspec.Struct):
    pending: int
    last_run: SyncRunOut | None


class SyncJobAccepted(msgspec.Struct):
    job_id: str
