"""What the catalog API returns: products, pages of them, import history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec

from ekimo.products.models import Import, Product

ProductState = Literal["pending", "synced"]
ExportFormat = Literal["csv", "xlsx"]


class ProductOut(msgspec.Struct):
    """A catalog entry; `state` is `pending` until the external API has its current version."""

    barcode: str
    name: str
    price: Decimal
    quantity: Decimal
    last_updated: datetime
    version: int
    synced_version: int
    state: ProductState
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, product: Product) -> ProductOut:
        return cls(
            barcode=product.barcode,
            name=product.name,
            price=product.price,
            quantity=product.quantity,
            last_updated=product.last_updated,
            version=product.version,
            synced_version=product.synced_version,
            state="pending" if product.version > product.synced_version else "synced",
            created_at=product.created_at,
            updated_at=product.updated_at,
        )


class ProductPage(msgspec.Struct):
    items: list[ProductOut]
    total: int
    limit: int
    offset: int


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
    user_id: int | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int
    # While `running`: rows read so far.
    rows_done: int | None
    # The rejected rows as a CSV file to fix and upload again (when there are any).
    errors_csv: str | None

    @classmethod
    def from_model(cls, item: Import, rows_done: int | None = None) -> ImportSummary:
        return cls(**_summary_fields(item, rows_done))


class ImportOut(ImportSummary):
    """The import's full report: the first 1,000 errors and the warnings as well."""

    errors: list[dict[str, Any]] = msgspec.field(default_factory=list[dict[str, Any]])
    errors_truncated: bool = False
    warnings: list[str] = msgspec.field(default_factory=list[str])

    @classmethod
    def from_model(cls, item: Import, rows_done: int | None = None) -> ImportOut:
        return cls(
            **_summary_fields(item, rows_done),
            errors=item.errors,
            errors_truncated=item.errors_truncated,
            warnings=item.warnings,
        )


def _summary_fields(item: Import, rows_done: int | None) -> dict[str, Any]:
    finished = item.status not in ("queued", "running")
    has_rows = item.rejected > 0 and finished
    return {
        "id": item.id,
        "filename": item.filename,
        "format": item.format,
        "status": item.status,
        "dry_run": item.dry_run,
        "on_error": item.on_error,
        "rows": item.rows,
        "created": item.created,
        "updated": item.updated,
        "unchanged": item.unchanged,
        "rejected": item.rejected,
        "errors_total": item.errors_total,
        "user_id": item.user_id,
        "started_at": item.started_at,
        "finished_at": item.finished_at if finished else None,
        "duration_ms": item.duration_ms,
        "rows_done": rows_done if item.status == "running" else None,
        "errors_csv": f"/imports/{item.id}/errors.csv" if has_rows else None,
    }


class ImportPage(msgspec.Struct):
    items: list[ImportSummary]
    total: int
    limit: int
    offset: int


class ImportQueued(msgspec.Struct):
    """An asynchronous import waiting for the worker; follow `location` for its state."""

    import_id: int
    status: str
    location: str
