"""The import engine's tables: one row per import, and what an import leaves behind besides its
report: the rejected rows as they were in the file and, for a queued import, the file itself.

Tables (migration 0004_catalog):
- `import_rejected_rows(import_id, row_no, cells jsonb, error)`: row 0 holds the file's header;
  every other row is a rejected row's cells, exactly as read, and its error messages.
- `import_uploads(import_id, size, rows_done)` and `import_upload_chunks(import_id, seq, data)`:
  a file waiting for (or being read by) the worker, in 1 MiB pieces, so that a worker on another
  machine can read it and neither side holds the whole file in memory.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from advanced_alchemy.base import BigIntAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ekimo.tables import metadata


class Import(BigIntAuditBase):
    """One import of a product file, whatever its outcome (applied, validated, rejected)."""

    __tablename__ = "imports"

    # Who imported: id and name are copies, so the history outlives a deleted account.
    user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    username: Mapped[str | None] = mapped_column(String(64))
    # The id of the request that uploaded the file (X-Request-ID), to find its log lines.
    request_id: Mapped[str | None] = mapped_column(String(128))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    on_error: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)
    unchanged: Mapped[int] = mapped_column(BigInteger)
    rejected: Mapped[int] = mapped_column(BigInteger)
    # The first 1,000 errors ({"row", "column", "value", "message"}) and the total count.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    errors_total: Mapped[int] = mapped_column(BigInteger)
    errors_truncated: Mapped[bool] = mapped_column(Boolean)
    warnings: Mapped[list[str]] = mapped_column(JSONB)
    started_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    duration_ms: Mapped[int] = mapped_column(BigInteger)


import_rejected_rows = Table(
    "import_rejected_rows",
    metadata,
    Column(
        "import_id",
        BigInteger,
        ForeignKey("imports.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("row_no", Integer, primary_key=True),
    Column("cells", JSONB, nullable=False),
    Column("error", Text, nullable=True),
)

import_uploads = Table(
    "import_uploads",
    metadata,
    Column(
        "import_id",
        BigInteger,
        ForeignKey("imports.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("size", BigInteger, nullable=False),
    Column("rows_done", BigInteger, nullable=False, server_default=text("0")),
)

import_upload_chunks = Table(
    "import_upload_chunks",
    metadata,
    Column(
        "import_id",
        BigInteger,
        ForeignKey("import_uploads.import_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)
