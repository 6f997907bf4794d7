"""An uploaded file imported on behalf of a caller, as PUT /products and the console's Import page
both do it: now (within the shutdown grace, audited when applied) or queued for the worker."""

from __future__ import annotations

from typing import IO

from ekimo.container import Container
from ekimo.imports.jobs import queue_import
from ekimo.imports.schemas import ImportOptions, ImportReport
from ekimo.imports.service import ImportService
from ekimo.users import audit
from ekimo.users.audit import Action
from ekimo.users.principals import Principal


async def import_now(
    container: Container,
    stream: IO[bytes],
    filename: str,
    options: ImportOptions,
    actor: Principal | None,
) -> ImportReport:
    """Import `stream` and return its report (applied, validated or rejected: a rejected
    report is returned, not raised). Raises what `ImportService.run` raises (`FileProblem`,
    `ImportFailed`). An applied import is recorded in the audit log."""
    # On SIGTERM the import gets the shutdown grace; past it, it is rolled back (503).
    report = await container.shutdown.cut_at_deadline(
        ImportService(container).run(
            stream,
            filename,
            options,
            user_id=actor.user_id if actor is not None else None,
            username=actor.username if actor is not None else None,
        )
    )
    if report.status == "applied":
        await audit.record(
            container,
            Action.IMPORT_APPLIED,
            actor=actor,
            target=f"import:{report.import_id}",
            details={
                "filename": report.filename,
                "created": report.created,
                "updated": report.updated,
            },
        )
    return report


async def import_later(
    container: Container,
    stream: IO[bytes],
    filename: str,
    options: ImportOptions,
    actor: Principal | None,
) -> int:
    """Store `stream` and queue its import for the worker; the import's id (GET /imports/{id}
    follows it: queued, running, then its report). Raises `FileProblem` for a file name that is
    not .csv or .xlsx, `ImportNotQueued` when the queue does not take it."""
    return await queue_import(
        container,
        stream,
        filename,
        options,
        actor.user_id if actor is not None else None,
        actor.username if actor is not None else None,
    )
