"""The record of sync runs (`sync_runs`) as the API and the console read it back: plain
reads, so Advanced Alchemy's repository does them. A run writes its own row (`sync.journal`)."""

from __future__ import annotations

import msgspec
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import OffsetPagination, SQLAlchemyAsyncRepositoryService

from ekimo.sync.errors import SyncRunNotFound
from ekimo.sync.models import SyncRun
from ekimo.sync.schemas import SyncRunOut

NEWEST_FIRST = OrderBy(field_name="id", sort_order="desc")


class SyncRunRepository(SQLAlchemyAsyncRepository[SyncRun]):
    model_type = SyncRun


class SyncRuns(SQLAlchemyAsyncRepositoryService[SyncRun, SyncRunRepository]):
    """Sync runs as the API shows them, newest first."""

    repository_type = SyncRunRepository

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
