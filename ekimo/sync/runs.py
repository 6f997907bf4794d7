"""The record of sync runs (`sync_runs`): a run's summary, written when the run starts and when
it ends, and read back by the API. Plain CRUD, so Advanced Alchemy's repository does it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import OffsetPagination, SQLAlchemyAsyncRepositoryService
from sqlalchemy import func, update

from ekimo.sync.errors import SyncRunNotFound
from ekimo.sync.models import SyncRun
from ekimo.sync.schemas import SyncRunOut

NEWEST_FIRST = OrderBy(field_name="id", sort_order="desc")


@dataclass
class RunSummary:
    """The outcome of a run, as stored in `sync_runs`."""

    id: int
    status: str
    trigger: str
    started_at: datetime
    pending_at_start: int = 0
    sent: int = 0
    acknowledged: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    error: str | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    last_failure: str | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "trigger": self.trigger,
            "pending_at_start": self.pending_at_start,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "rejected": self.rejected,
            "failed": self.failed,
            "retries": self.retries,
            "error": self.error,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_ms": self.duration_ms,
        }

    def columns(self) -> dict[str, Any]:
        """Its `sync_runs` values, but the id, which the database gives."""
        values = asdict(self)
        del values["id"], values["last_failure"]
        return values


class SyncRunRepository(SQLAlchemyAsyncRepository[SyncRun]):
    model_type = SyncRun


class SyncRuns(SQLAlchemyAsyncRepositoryService[SyncRun, SyncRunRepository]):
    """Sync runs on one session; the caller commits what `record` and `finish` write."""

    repository_type = SyncRunRepository

    async def close_abandoned(self) -> int:
        """Fail the runs left `running` by a process that died; the caller holds the run lock,
        so none of them is still going. Returns how many were closed."""
        result = await self.repository.session.execute(
            update(SyncRun)
            .where(SyncRun.status == "running")
            .values(
                status="failed",
                error="interrupted: the process running it stopped; the next run sent the rest",
                finished_at=func.now(),
            )
            .returning(SyncRun.id)
        )
        return len(result.all())

    async def record(self, summary: RunSummary) -> int:
        """Insert the run as `summary` has it; returns its id."""
        run = await self.create(summary.columns(), auto_refresh=False)
        return run.id

    async def finish(self, summary: RunSummary) -> None:
        """Store the final values of run `summary.id`."""
        await self.update(summary.columns(), item_id=summary.id, auto_refresh=False)

    async def page(self, *, limit: int, offset: int) -> OffsetPagination[SyncRunOut]:
        runs, total = await self.get_many_and_count(
            LimitOffset(limit=limit, offset=offset), NEWEST_FIRST
        )
        return OffsetPagination(
            items=[_out(r) for r in runs], total=total, limit=limit, offset=offset
        )

    async def one(self, run_id: int) -> SyncRunOut:
        """Run `run_id`; `SyncRunNotFound` when there is none."""
        run = await self.get_one_or_none(SyncRun.id == run_id)
        if run is None:
            raise SyncRunNotFound(run_id)
        return _out(run)

    async def last(self) -> SyncRunOut | None:
        runs = await self.get_many(LimitOffset(limit=1, offset=0), NEWEST_FIRST)
        return _out(runs[0]) if runs else None


def _out(run: SyncRun) -> SyncRunOut:
    return msgspec.convert(run, SyncRunOut, from_attributes=True)
