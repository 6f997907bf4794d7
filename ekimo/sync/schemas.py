"""What the sync API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

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
    pending: Annotated[
        int,
        msgspec.Meta(
            description="Products waiting for the next sync (those the external API rejected "
            "at their current version left out): an exact count when `pending_exact`, "
            "PostgreSQL's estimate when they are many."
        ),
    ]
    pending_exact: Annotated[
        bool, msgspec.Meta(description="Whether `pending` is an exact count or an estimate.")
    ]
    last_run: SyncRunOut | None


class SyncJobAccepted(msgspec.Struct):
    job_id: str
