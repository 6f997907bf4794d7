"""What can go wrong with an import as a whole, in the core's error vocabulary."""

from __future__ import annotations

from typing import Any

from ekimo.errors import Conflict, NotFound, Problem, Unavailable
from ekimo.imports.schemas import ImportReport

NOT_QUEUED_MESSAGE = "the import could not be queued; try again"


class FileProblem(Problem):
    """The file as a whole cannot be imported: 400 wrong type, 413 too large, 422 unreadable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status=status)

    @property
    def message(self) -> str:
        return self.detail


def report_members(report: ImportReport) -> dict[str, Any]:
    """The report as problem-document members: RFC 9457 reserves `status` for the HTTP code."""
    members = report.to_dict()
    members["import_status"] = members.pop("status")
    return members


class ImportFailed(Problem):
    """The file as a whole could not be imported (recorded as a rejected import)."""

    def __init__(self, problem: FileProblem, report: ImportReport | None) -> None:
        extra = report_members(report) if report is not None else None
        super().__init__(problem.detail, status=problem.status, extra=extra)
        self.report = report

    @property
    def message(self) -> str:
        return self.detail


class ImportRejected(Problem):
    """Invalid rows rejected the whole file (on_error=reject); nothing was written."""

    status = 422
    title = "Import rejected"

    def __init__(self, report: ImportReport) -> None:
        super().__init__(
            f"{report.rejected} of {report.rows} rows are invalid ({report.errors_total} "
            "errors); nothing was written: fix the rows listed in `errors`, or use "
            "on_error=skip to import the valid ones",
            extra=report_members(report),
        )
        self.report = report


class ImportNotQueued(Unavailable):
    """The queue did not take the job (it is down, or refused it)."""

    def __init__(self, import_id: int) -> None:
        super().__init__(f"import {import_id}: {NOT_QUEUED_MESSAGE}")


class ImportNotFound(NotFound):
    title = "Import not found"

    def __init__(self, import_id: int) -> None:
        super().__init__(f"There is no import {import_id}; GET /imports lists them.")


class ImportNotFinished(Conflict):
    title = "Import not finished"

    def __init__(self, import_id: int, status: str) -> None:
        super().__init__(
            f"Import {import_id} is {status}; its errors.csv exists once it has "
            f"finished (GET /imports/{import_id})."
        )
