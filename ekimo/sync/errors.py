"""What can go wrong with a sync request, in the core's error vocabulary (`ekimo.errors`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ekimo.errors import Conflict, NotFound, Problem, Unavailable


@dataclass(frozen=True)
class ItemError:
    """One thing to fix in a received payload: the item (None: the body) and its field."""

    index: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}

    def describe(self) -> str:
        where = "body"
        if self.index is not None:
            where = f"products[{self.index}]" + (f".{self.field}" if self.field else "")
        return f"{where}: {self.message}"


class InvalidPayload(Problem):
    """Nothing was applied; `errors` names each item and field to fix."""

    status = 422

    def __init__(self, errors: list[ItemError]) -> None:
        super().__init__(
            f"nothing applied; fix {errors[0].describe()}",
            extra={"errors": [e.as_dict() for e in errors]},
        )
        self.errors = errors


class TooManyItems(Problem):
    status = 413

    def __init__(self, count: int, max_items: int) -> None:
        super().__init__(
            f"{count} products in one request; send at most {max_items} per request",
            extra={"max_items": max_items},
        )
        self.count = count


class SyncRunNotFound(NotFound):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"sync run {run_id} does not exist")


class SyncAlreadyQueued(Conflict):
    """The queue refused the job as a duplicate (only a fixed job key can do that)."""

    def __init__(self) -> None:
        super().__init__("a sync is already queued")


class DatabaseUnavailable(Unavailable):
    """A sync run cut short by a database outage (the run is recorded `failed` if possible)."""
