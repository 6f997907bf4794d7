"""The import history and each import's report.

The same reads as GET /imports, GET /imports/{id} and GET /imports/{id}/errors.csv
(`ImportHistory`); a queued or running import's page reloads itself until it has its report.
"""

from __future__ import annotations

from typing import Any

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from litestar import Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Stream, Template
from litestar.types import ControllerRouterHandler

from ekimo.bounds import MAX_BIGINT
from ekimo.container import Container
from ekimo.errors import Conflict, InvalidInput, NotFound
from ekimo.imports.controller import errors_download
from ekimo.imports.errors import ImportNotFinished, ImportNotFound
from ekimo.imports.history import ImportHistory
from ekimo.imports.schemas import ImportOut
from ekimo.users.guards import allow
from ekimo.users.roles import READ_IMPORTS
from ekimo.web.pages import render
from ekimo.web.session import CONSOLE_PATH

IMPORTS_PATH = f"{CONSOLE_PATH}/imports"
PAGE_SIZE = 50
# The report shows this many errors; the rejected rows download has all of them.
ERRORS_SHOWN = 100
REFRESH_SECONDS = 2

_HISTORY = {"history": Provide(create_service_provider(ImportHistory))}


class NoSuchImport(NotFound):
    def __init__(self, import_id: int) -> None:
        super().__init__(f"there is no import {import_id}; the Imports page lists them")


def _offset(request: Request[Any, Any, Any]) -> int:
    raw = request.query_params.get("offset") or "0"
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_BIGINT:
        raise InvalidInput(f"offset: {raw[:40]!r} is not a whole number; use the page's links")
    return int(raw)


def _checked_id(import_id: int) -> int:
    """An id the database can hold; any other names no import."""
    if not 1 <= import_id <= MAX_BIGINT:
        raise NoSuchImport(import_id)
    return import_id


def outcome(item: ImportOut) -> str:
    """What happened, in the words the report page picks its sentences by."""
    if item.status in ("queued", "running", "failed"):
        return item.status
    if item.status == "applied":
        return "applied_skipping" if item.rejected else "applied"
    if item.status == "validated":
        return "checked_skipping" if item.rejected else "checked"
    # rejected: invalid rows, or the file as a whole (no row to blame)
    if not item.rejected:
        return "unreadable"
    return "check_rejected" if item.dry_run else "import_rejected"


@get("/imports", opt=allow(READ_IMPORTS), dependencies=_HISTORY)
async def imports_page(
    request: Request[Any, Any, Any], history: NamedDependency[ImportHistory]
) -> Template:
    offset = _offset(request)
    page = await history.page(limit=PAGE_SIZE, offset=offset)
    previous = None
    if offset > 0:
        start = max(offset - PAGE_SIZE, 0)
        previous = f"{IMPORTS_PATH}?offset={start}" if start else IMPORTS_PATH
    following = None
    if offset + len(page.items) < page.total:
        following = f"{IMPORTS_PATH}?offset={offset + len(page.items)}"
    return render(
        request,
        "imports.html",
        imports=page.items,
        total=page.total,
        first_row=offset + 1,
        last_row=offset + len(page.items),
        pages={"previous": previous, "next": following},
        # A page showing an import in progress follows it.
        refresh=REFRESH_SECONDS
        if any(i.status in ("queued", "running") for i in page.items)
        else None,
    )


@get("/imports/{import_id:int}", opt=allow(READ_IMPORTS), dependencies=_HISTORY)
async def report_page(
    request: Request[Any, Any, Any],
    history: NamedDependency[ImportHistory],
    import_id: FromPath[int],
) -> Template:
    try:
        item = await history.report(_checked_id(import_id))
    except ImportNotFound:
        raise NoSuchImport(import_id) from None
    kind = outcome(item)
    shown = item.errors[:ERRORS_SHOWN]
    return render(
        request,
        "report.html",
        item=item,
        outcome=kind,
        errors=shown,
        more_errors=max(item.errors_total - len(shown), 0),
        valid_rows=item.rows - item.rejected,
        errors_csv=f"{IMPORTS_PATH}/{item.id}/errors.csv" if item.errors_csv else None,
        refresh=REFRESH_SECONDS if kind in ("queued", "running") else None,
    )


@get("/imports/{import_id:int}/errors.csv", opt=allow(READ_IMPORTS), dependencies=_HISTORY)
async def errors_csv(
    container: NamedDependency[Container],
    history: NamedDependency[ImportHistory],
    import_id: FromPath[int],
) -> Stream:
    """The rejected rows, as GET /imports/{id}/errors.csv gives them: fix and import again."""
    try:
        return await errors_download(container, history, _checked_id(import_id))
    except ImportNotFound:
        raise NoSuchImport(import_id) from None
    except ImportNotFinished as exc:
        raise Conflict(
            f"import {import_id} has not finished; its rejected rows can be downloaded from "
            "its page once it has"
        ) from exc


routes: list[ControllerRouterHandler] = [imports_page, report_page, errors_csv]
