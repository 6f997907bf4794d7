"""Browsing the catalog: filters, sorting and pages over `products` (Advanced Alchemy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import msgspec
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
from advanced_alchemy.service import OffsetPagination, SQLAlchemyAsyncRepositoryService
from sqlalchemy import ColumnElement

from ekimo.errors import InvalidInput, NotFound
from ekimo.products.models import Product
from ekimo.products.schemas import ProductOut, ProductState

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


class InvalidQueryError(InvalidInput):
    """A filter or sort parameter the user has to correct; the message names it."""

    title = "Invalid query parameter"


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


class ProductNotFound(NotFound):
    title = "Product not found"

    def __init__(self, barcode: str) -> None:
        super().__init__(f"No product has barcode {barcode!r}.")


class CatalogService(SQLAlchemyAsyncRepositoryService[Product, ProductRepository]):
    """Reads the catalog; its writes are the functions of `products.writes`."""

    repository_type = ProductRepository
    # Two queries: the total stays right on a page past the end.
    count_with_window_function = False

    async def page(
        self, query: ProductQuery, *, limit: int, offset: int
    ) -> OffsetPagination[ProductOut]:
        items, total = await self.get_many_and_count(
            *query.filters(), *query.order_by, LimitOffset(limit=limit, offset=offset)
        )
        return OffsetPagination(
            items=[msgspec.convert(p, ProductOut, from_attributes=True) for p in items],
            total=total,
            limit=limit,
            offset=offset,
        )

    async def product(self, barcode: str) -> ProductOut:
        """One product with its sync state; `ProductNotFound` when no product has `barcode`."""
        found = await self.get_one_or_none(Product.barcode == barcode)
        if found is None:
            raise ProductNotFound(barcode)
        return msgspec.convert(found, ProductOut, from_attributes=True)
