"""What the two optimistic import paths (`fast.csv`, `fast.xlsx`) share.

A fast path either imports a file whole, or steps aside (`NotFast`, or any error while the
connection is still usable) after rolling back what it did, and the import service's Python
path then reads the same file from where it was, reporting the exact errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any

from ekimo.products.writes import count_changes


class NotFast(Exception):
    """This file (or this part of it) is not for the fast path."""


async def dry_run_counts(conn: Any, source: str) -> tuple[int, int]:
    """A dry run's (created, updated) for the staged `source`; a barcode twice steps aside, as
    the MERGE of a real import would make it (the Python path reports those rows)."""
    counted = await count_changes(conn, source)
    if counted is None:
        raise NotFast("a barcode appears twice")
    return counted


@dataclass
class FastOutcome:
    """A file imported by a fast path; `transaction` is open unless it was a dry run."""

    rows: int
    created: int
    updated: int
    warnings: list[str]
    sha256: str
    transaction: Any
    header: list[str]
    positions: dict[str, int]


async def attempt(
    run: Callable[[], Awaitable[FastOutcome]],
    conn: Any,
    source: IO[bytes],
    stats: Counter[str],
    log: logging.Logger,
) -> FastOutcome | None:
    """`run()`'s outcome, or None (with `source` back where it was) when it stepped aside.

    `stats` counts "taken" and "fallback"; the reason for a fallback is logged.
    """
    start = source.tell()
    try:
        outcome = await run()
    except NotFast as reason:
        log.info("import fast path not taken: %s", reason)
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if conn.is_closed():
            raise
        log.info("import fast path not taken: %s: %s", type(exc).__name__, exc)
    else:
        stats["taken"] += 1
        log.info("import fast path taken: %d rows", outcome.rows)
        return outcome
    stats["fallback"] += 1
    source.seek(start)
    return None
