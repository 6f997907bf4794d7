"""What the import engine takes and gives: options, the report, the history's views of it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec

from ekimo.imports.validation import RowError

# Only named in signatures: the command line loads these structs without the database layer.
if TYPE_CHECKING:
    from ekimo.imports.models import Import

Format = Literal["csv", "xlsx"]
OnError = Literal["reject", "skip"]
Status = Literal["applied", "validated", "rejected"]


class ImportOptions(msgspec.Struct, frozen=True, kw_only=True):
    dry_run: bool = False
    on_error: OnError = "reject"


class ImportReport(msgspec.Struct, kw_only=True):
    import_id: int | None
    filename: str
    format: Format
    dry_run: bool
    status: Status
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[RowError]
    errors_total: int
    errors_truncated: bool
    warnings: list[str]
    duration_ms: int

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


class ImportSummary(msgspec.Struct):
    """One import in the history. `status`: queued, running (asynchronous imports only),
    applied, validated (dry run), rejected, failed."""

    id: int
    filename: str
    format: str
    status: str
    dry_run: bool
    on_error: str
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    errors_total: int
    # Who imported (kept when the account is deleted).
    user_id: int | None
    username: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int
    # While `running`: rows read so far.
    rows_done: int | None = None
    # The rejected rows as a CSV file to fix and upload again (when there are any).
    errors_csv: str | None = None


class ImportOut(ImportSummary):
    """The import's full report: the first 1,000 errors and the warnings as well."""

    errors: list[dict[str, Any]] = msgspec.field(default_factory=list[dict[str, Any]])
    errors_truncated: bool = False
    warnings: list[str] = msgspec.field(default_factory=list[str])


S = TypeVar("S", bound=ImportSummary)


def describe(item: Import, rows_done: int | None, as_type: type[S]) -> S:
    """The `imports` row as `as_type`, with what it implies: no finish time and no errors file
    before it has finished, rows read so far while it runs."""
    finished = item.status not in ("queued", "running")
    return msgspec.structs.replace(
        msgspec.convert(item, as_type, from_attributes=True),
        finished_at=item.finished_at if finished else None,
        rows_done=rows_done if item.status == "running" else None,
        errors_csv=f"/imports/{item.id}/errors.csv" if item.rejected > 0 and finished else None,
    )


class ImportQueued(msgspec.Struct):
    """An asynchronous import waiting for the worker; follow `location` for its state."""

    import_id: int
    status: str
    location: str
