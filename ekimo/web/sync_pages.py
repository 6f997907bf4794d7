"""The sync: pending products, the last run, the runs, and Sync now.

The page reads what GET /sync/status and GET /sync/runs read; Sync now queues a run as
POST /sync does (`jobs.start_sync`: the queue and the audit trail). After Sync now the page
refreshes itself until the queued run has started and ended, or until the worker has been
silent for `WORKER_PATIENCE_S`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from litestar import Request, get, post
from litestar.datastructures import MultiDict
from litestar.di import NamedDependency, Provide
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from ekimo.bounds import MAX_BIGINT
from ekimo.container import Container
from ekimo.errors import InvalidInput
from ekimo.sync import jobs
from ekimo.sync.errors import SyncAlreadyQueued
from ekimo.sync.runs import SyncRuns
from ekimo.sync.service import SyncService
from ekimo.users.guards import allow
from ekimo.users.principals import Principal
from ekimo.users.roles import READ_SYNC, RUN_SYNC
from ekimo.web.pages import redirect, render
from ekimo.web.session import CONSOLE_PATH

SYNC_PATH = f"{CONSOLE_PATH}/sync"
RUNS_PAGE = 20
REFRESH_SECONDS = 2
# How long a page waits (refreshing) for a queued sync to start before it suspects the worker.
WORKER_PATIENCE_S = 60
# The runs table's `trigger` of a sync started from the console (the API's is `api`).
CONSOLE_TRIGGER = "console"

_RUNS = {"runs": Provide(create_service_provider(SyncRuns))}


def _offset(params: MultiDict[str]) -> int:
    raw = params.get("offset") or "0"
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_BIGINT:
        raise InvalidInput(f"The page offset {raw!r} is not a whole number: use the page links.")
    return int(raw)


def duration_text(milliseconds: int | None) -> str:
    """350 ms, 4.2 s, 3 min 5 s."""
    if milliseconds is None:
        return ""
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.1f} s"
    minutes, seconds = divmod(round(milliseconds / 1000), 60)
    return f"{minutes} min {seconds} s"


@dataclass(frozen=True)
class QueuedSync:
    """A sync this browser just queued, as the redirect after Sync now carries it: the newest
    run before it (a run with a higher id started since) and when it was queued."""

    after_run: int
    queued_at: float

    @classmethod
    def of(cls, params: MultiDict[str]) -> QueuedSync | None:
        after, queued = params.get("after") or "", params.get("queued") or ""
        if not (after.isdigit() and queued.isdigit()):
            return None  # not after a Sync now (or a hand-made address): nothing to wait for
        return cls(after_run=int(after), queued_at=float(queued))

    def params(self) -> dict[str, int]:
        return {"after": self.after_run, "queued": int(self.queued_at)}


async def _sync_page(
    request: Request[Any, Any, Any],
    container: Container,
    runs: SyncRuns,
    *,
    status_code: int = 200,
    error: str | None = None,
) -> Template:
    offset = _offset(request.query_params)
    page = await runs.page(limit=RUNS_PAGE, offset=offset)
    # On the first page the newest run is its first row: one read, so the refresh decided
    # below never disagrees with the table shown (a run ending between two reads).
    last = (page.items[0] if page.items else None) if offset == 0 else await runs.last()
    # Counted after the runs were read: a run shown ended had committed its marks before.
    pending = await SyncService(container).pending_count()
    queued = QueuedSync.of(request.query_params)
    # Waiting: queued here and no run started since. Bounded: a worker that never comes must
    # not keep the page reloading forever.
    waiting = queued is not None and (last is None or last.id <= queued.after_run)
    stalled = waiting and queued is not None and time.time() - queued.queued_at > WORKER_PATIENCE_S
    running = last is not None and last.status == "running"
    previous = None
    if offset > 0:
        back = max(offset - RUNS_PAGE, 0)
        previous = f"{SYNC_PATH}?offset={back}" if back else SYNC_PATH
    following = None
    if offset + RUNS_PAGE < page.total:
        following = f"{SYNC_PATH}?offset={offset + RUNS_PAGE}"
    return render(
        request,
        "sync.html",
        status_code=status_code,
        error=error,
        pending=pending,
        last=last,
        runs=page.items,
        total=page.total,
        first_row=offset + 1,
        pages={"previous": previous, "next": following},
        waiting=waiting and not stalled,
        stalled=stalled,
        patience_s=WORKER_PATIENCE_S,
        refresh=REFRESH_SECONDS if running or (waiting and not stalled) else None,
        duration=duration_text,
    )


@get("/sync", opt=allow(READ_SYNC), dependencies=_RUNS)
async def sync_page(
    request: Request[Any, Any, Any],
    container: NamedDependency[Container],
    runs: NamedDependency[SyncRuns],
) -> Template:
    return await _sync_page(request, container, runs)


@post("/sync", opt=allow(RUN_SYNC), dependencies=_RUNS)
async def sync_now(
    request: Request[Principal, Any, Any],
    container: NamedDependency[Container],
    runs: NamedDependency[SyncRuns],
) -> Template | Redirect:
    """Sync now: queued like POST /sync, then back to the page, which waits for the run."""
    before = await runs.last()  # read first: the run may start before the redirect is sent
    try:
        await jobs.start_sync(container, request.user, CONSOLE_TRIGGER)
    except SyncAlreadyQueued:
        message = "A sync is already queued: its run appears below once the worker starts it."
        return await _sync_page(request, container, runs, status_code=409, error=message)
    queued = QueuedSync(after_run=before.id if before else 0, queued_at=time.time())
    notice = "Sync queued: the run appears below once the worker starts it."
    return redirect(SYNC_PATH, notice=notice, **queued.params())


routes: list[ControllerRouterHandler] = [sync_page, sync_now]
