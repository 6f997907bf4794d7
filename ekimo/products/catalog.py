"""Browsing the catalog: filters, sorting and pages over `products` (Advanced Alchemy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from advanced_alchemy.filters import (
    CollectionFilter,
    LimitOffset,
    OnBeforeAfter,
    OrderBy,
    SearchFilter,
    StatementFilter,
    StatementTypeT,
)
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo.products.catalog_schemas import ProductState
from ekimo.products.history import import_uploads
from ekimo.products.models import Import, Product

SORTABLE_FIELDS = (
    "barcode",
    "name",
    "price",
    "quantity",
    "last_updated",
    "created_at",
    "updated_at",
    "version",
)
DEFAULT_SORT = "barcode"
MAX_PAGE_SIZE = 1000


class InvalidQueryError(ValueError):
    """A filter or sort parameter the user has to correct; the message names it."""


def parse_sort(text: str) -> list[OrderBy]:
    """`name,-updated_at` -> ORDER BY name ASC, updated_at DESC (then id, for stable pages)."""
    orders: list[OrderBy] = []
    seen: set[str] = set()
    for raw in text.split(","):
        term = raw.strip()
        descending = term.startswith("-")
        name = term.lstrip("+-").strip()
        if name not in SORTABLE_FIELDS:
            allowed = ", ".join(SORTABLE_FIELDS)
            shown = term or "(empty)"
            raise InvalidQueryError(
                f"sort: cannot sort by {shown!r}; use a comma-separated list of {allowed} "
                "(prefix a field with '-' for descending order)"
            )
        if name in seen:
            raise InvalidQueryError(f"sort: {name!r} appears twice")
        seen.add(name)
        orders.append(OrderBy(field_name=name, sort_order="desc" if descending else "asc"))
    orders.append(OrderBy(field_name="id", sort_order="asc"))
    return orders


@dataclass(frozen=True)
class ProductQuery:
    """The filters shared by the list and the export."""

    barcodes: Sequence[str] = ()
    q: str | None = None
    state: ProductState | None = None
    updated_since: datetime | None = None
    sort: str = DEFAULT_SORT
    order_by: list[OrderBy] = field(init=False, default_factory=list[OrderBy])

    def __post_init__(self) -> None:
        for barcode in self.barcodes:
            if not (barcode.isascii() and barcode.isdigit() and 1 <= len(barcode) <= 14):
                raise InvalidQueryError(f"barcode: {barcode!r} is not 1 to 14 digits")
        object.__setattr__(self, "order_by", parse_sort(self.sort))

    def filters(self) -> list[StatementFilter | ColumnElement[bool]]:
        filters: list[StatementFilter | ColumnElement[bool]] = []
        if self.barcodes:
            filters.append(CollectionFilter(field_name="barcode", values=list(self.barcodes)))
        if self.q:
            filters.append(
                SearchFilter(
                    field_name="name", value=self.q, ignore_case=True, escape_wildcards=True
                )
            )
        if self.state == "pending":
            filters.append(Product.version > Product.synced_version)
        elif self.state == "synced":
            filters.append(Product.version <= Product.synced_version)
        if self.updated_since is not None:
            since = self.updated_since
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            filters.append(
                OnBeforeAfter(field_name="updated_at", on_or_before=None, on_or_after=since)
            )
        return filters

    def apply(self, statement: StatementTypeT) -> StatementTypeT:
        """Filters and ordering on any SELECT over `products` (the export selects columns)."""
        for condition in [*self.filters(), *self.order_by]:
            if isinstance(condition, StatementFilter):
                statement = condition.append_to_statement(statement, Product)
            else:
                statement = cast(StatementTypeT, statement.where(condition))
        return statement


class ProductRepository(SQLAlchemyAsyncRepository[Product]):
    model_type = Product
    # Two queries: the total stays right on a page past the end.
    count_with_window_function = False


class CatalogService:
    """Reads the catalog; writes belong to the import and the sync."""

    def __init__(self, session: AsyncSession) -> None:
        self.repository = ProductRepository(session=session)

    async def page(
        self, query: ProductQuery, *, limit: int, offset: int
    ) -> tuple[Sequence[Product], int]:
        return await self.repository.get_many_and_count(
            *query.filters(), *query.order_by, LimitOffset(limit=limit, offset=offset)
        )

    async def get(self, barcode: str) -> Product | None:
        return await self.repository.get_one_or_none(Product.barcode == barcode)


class ImportRepository(SQLAlchemyAsyncRepository[Import]):
    model_type = Import
    count_with_window_function = False


class ImportHistory:
    """Reads the imports: newest first, with the progress of a running one."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repository = ImportRepository(session=session)

    async def page(self, *, limit: int, offset: int) -> tuple[list[tuple[Import, int | None]], int]:
        items, total = await self.repository.get_many_and_count(
            OrderBy(field_name="id", sort_order="desc"), LimitOffset(limit=limit, offset=offset)
        )
        running = [i.id for i in items if i.status == "running"]
        progress: dict[int, int] = {}
        if running:
            result = await self.session.execute(
                select(import_uploads.c.import_id, import_uploads.c.rows_done).where(
                    import_uploads.c.import_id.in_(running)
                )
            )
            progress = {import_id: rows_done for import_id, rows_done in result}
        return [(i, progress.get(i.id)) for i in items], total

    async def get(self, import_id: int) -> tuple[Import, int | None] | None:
        item = await self.repository.get_one_or_none(Import.id == import_id)
        if item is None:
            return None
        rows_done = await self.session.scalar(
            select(import_uploads.c.rows_done).where(import_uploads.c.import_id == import_id)
        )
        return item, rows_done
