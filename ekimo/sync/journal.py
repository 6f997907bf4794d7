"""A sync run's own record in `sync_runs`, as the run writes it: inserted when it starts,
updated when it ends; runs left `running` by a process that died are closed.

In SQL on the run's session: the ORM model and Advanced Alchemy's service, through which the
API reads the runs (`sync.runs`), would add a third of a second to the start of `ekimo sync`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


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


# The row's columns are the summary's fields, but the id (the database's) and the last failure.
_COLUMNS = tuple(f.name for f in fields(RunSummary) if f.name not in ("id", "last_failure"))
_INSERT = text(
    f"INSERT INTO sync_runs ({', '.join(_COLUMNS)}, created_at, updated_at)"  # noqa: S608 (our own column names)
    f" VALUES ({', '.join(':' + c for c in _COLUMNS)}, now(), now()) RETURNING id"
)
_UPDATE = text(
    f"UPDATE sync_runs SET {', '.join(f'{c} = :{c}' for c in _COLUMNS)}, updated_at = now()"  # noqa: S608 (our own column names)
    " WHERE id = :id"
)
_CLOSE_ABANDONED = text(
    "UPDATE sync_runs SET status = 'failed', finished_at = now(), updated_at = now(),"
    " error = 'interrupted: the process running it stopped; the next run sent the rest'"
    " WHERE status = 'running' RETURNING id"
)


async def record(session: AsyncSession, summary: RunSummary) -> int:
    """Insert the run as `summary` has it; returns its id. The caller commits."""
    return int((await session.execute(_INSERT, summary.columns())).scalar_one())


async def finish(session: AsyncSession, summary: RunSummary) -> None:
    """Store the final values of run `summary.id`. The caller commits."""
    await session.execute(_UPDATE, {**summary.columns(), "id": summary.id})


async def close_abandoned(session: AsyncSession) -> int:
    """Fail the runs left `running` by a process that died; the caller holds the run lock, so
    none of them is still going. Returns how many were closed. The caller commits."""
    return len((await session.execute(_CLOSE_ABANDONED)).all())
