"""Browsing the catalog: filters, sorting, pages (by offset or by cursor) and their totals.

Every read is served by an index (migration 0007), so its cost follows the page, not the
catalog: "name contains" reads the trigram index, each sort key its index (key, id), the
state the narrow `pending_products`. `total` is exact up to `EXACT_TOTAL_LIMIT` matches and
PostgreSQL's estimate above (flagged `total_exact: false`): counting millions of rows for every
page is what made the first page slow. A page's `next` cursor is the last row's sort key: the
next page starts there through the index, however deep in the catalog it is.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from advanced_alchemy.filters import LIKE_ESCAPE_CHAR, escape_like_value
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Executable,
    Integer,
    Select,
    String,
    and_,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler

from ekimo.bounds import MAX_BIGINT, StorableText, in_range
from ekimo.errors import InvalidInput, NotFound
from ekimo.products.models import PendingProduct, Product
from ekimo.products.schemas import ProductOut, ProductPage, ProductState

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
MAX_SORT_LENGTH = 200  # every field once, with signs and spaces to spare
MAX_PAGE_SIZE = 1000
# `total` counts up to this many matches (a bounded read); above, it is the planner's estimate.
EXACT_TOTAL_LIMIT = 10_000
# Room for a cursor of every sort key, the longest name in JSON escapes included, in base64.
MAX_CURSOR_LENGTH = 4096
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"

_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    name: getattr(Product, name) for name in (*SORTABLE_FIELDS, "id")
}
_BigInt = Annotated[int, msgspec.Meta(ge=-MAX_BIGINT - 1, le=MAX_BIGINT)]
_Instant = Annotated[datetime, msgspec.Meta(tz=True)]
# What each key of a cursor must decode to; anything else is a cursor ekimo did not make.
_KEY_TYPES: dict[str, Any] = {
    "id": _BigInt,
    "barcode": StorableText,
    "name": StorableText,
    "price": Decimal,
    "quantity": Decimal,
    "last_updated": _Instant,
    "created_at": _Instant,
    "updated_at": _Instant,
    "version": _BigInt,
}
Session = AsyncSession | async_scoped_session[AsyncSession]
_BAD_CURSOR = (
    "cursor: not a cursor of this list; pass the `next` of the previous page unchanged "
    "(or leave `cursor` out to start from the first page)"
)


class InvalidQueryError(InvalidInput):
    """A filter or sort parameter the user has to correct; the message names it."""

    title = "Invalid query parameter"


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool

    def __str__(self) -> str:
        return f"-{self.field}" if self.descending else self.field


def parse_sort(text: str) -> tuple[SortKey, ...]:
    """`name,-updated_at` -> name ASC, updated_at DESC, then id (for stable pages).

    The id follows the first key's direction, so that a sort by one key reads its index
    (key, id) forward or backward; a sort with `barcode` needs no id (barcodes are unique).
    """
    keys: list[SortKey] = []
    seen: set[str] = set()
    for raw in text.split(","):
        term = raw.strip()
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
        keys.append(SortKey(name, descending=term.startswith("-")))
    if "barcode" not in seen:
        keys.append(SortKey("id", keys[0].descending))
    return tuple(keys)


def _after(order: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """The rows after `values` (a row's sort key) in `order`."""
    columns = [_COLUMNS[key.field] for key in order]
    bound = [literal(value, column.type) for column, value in zip(columns, values, strict=True)]
    if len({key.descending for key in order}) == 1:
        # One direction: a row comparison, which the index (key, id) seeks to directly.
        if order[0].descending:
            return tuple_(*columns) < tuple_(*bound)
        return tuple_(*columns) > tuple_(*bound)
    # Mixed directions: a > x OR (a = x AND (b < y OR (b = y AND ...))), bounded on the first
    # key so that its index still narrows the scan.
    condition: ColumnElement[bool] | None = None
    for key, column, value in reversed(list(zip(order, columns, bound, strict=True))):
        beyond = column < value if key.descending else column > value
        condition = beyond if condition is None else or_(beyond, and_(column == value, condition))
    assert condition is not None
    first = columns[0] <= bound[0] if order[0].descending else columns[0] >= bound[0]
    return and_(first, condition)


def _storable(value: Decimal) -> bool:
    """Within what price and quantity can hold (PostgreSQL refuses far larger numerics)."""
    if not value.is_finite():
        return False
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -3 and abs(value) < 10**15


@dataclass(frozen=True)
class ProductQuery:
    """The filters and the order shared by the list and the export."""

    barcodes: Sequence[str] = ()
    q: str | None = None
    state: ProductState | None = None
    updated_since: datetime | None = None
    sort: str = DEFAULT_SORT
    order: tuple[SortKey, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        for barcode in self.barcodes:
            if not (barcode.isascii() and barcode.isdigit() and 1 <= len(barcode) <= 14):
                raise InvalidQueryError(f"barcode: {barcode!r} is not 1 to 14 digits")
        object.__setattr__(self, "order", parse_sort(self.sort))

    @property
    def sort_text(self) -> str:
        """The sort as the user's keys, normalized (`+name, -price` -> `name,-price`)."""
        return ",".join(str(key) for key in self.order if key.field != "id")

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses."""
        conditions: list[ColumnElement[bool]] = []
        if self.barcodes:
            conditions.append(Product.barcode.in_(list(self.barcodes)))
        if self.q:
            # Inlined rather than bound: each text gets a plan of its own. A plan cached for
            # any text guesses how many names match, and may scan by barcode instead.
            pattern = f"%{escape_like_value(self.q)}%"
            conditions.append(
                Product.name.ilike(
                    literal(pattern, String(), literal_execute=True), escape=LIKE_ESCAPE_CHAR
                )
            )
        if self.state == "pending":
            # By barcode: the planner can then walk the pending barcodes in order.
            conditions.append(Product.barcode.in_(select(PendingProduct.barcode)))
        elif self.state == "synced":
            conditions.append(~exists().where(PendingProduct.product_id == Product.id))
        if self.updated_since is not None:
            since = self.updated_since
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            conditions.append(Product.updated_at >= since)
        return conditions

    def matching(self) -> Select[Any]:
        """A row per matching product, to count or estimate. The pending ones alone are the
        narrow pending table's rows: joined to the catalog, the planner may read it all."""
        one = literal_column("1", Integer())
        if self.state == "pending" and not (self.barcodes or self.q or self.updated_since):
            return select(one).select_from(PendingProduct)
        return select(one).select_from(Product).where(*self.conditions())

    def ordering(self) -> list[ColumnElement[Any]]:
        return [
            _COLUMNS[key.field].desc() if key.descending else _COLUMNS[key.field].asc()
            for key in self.order
        ]

    def apply(self, statement: Select[Any]) -> Select[Any]:
        """Filters and ordering on any SELECT over `products` (the export selects columns)."""
        return statement.where(*self.conditions()).order_by(*self.ordering())

    def cursor_after(self, product: Product) -> str:
        """The opaque cursor of the rows after `product`: the sort, then its sort key."""
        values = [getattr(product, key.field) for key in self.order]
        raw = msgspec.json.encode((self.sort_text, values))
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def read_cursor(self, cursor: str) -> ColumnElement[bool]:
        """The condition "after the cursor's row"; `InvalidQueryError` saying what to fix."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            sort, values = msgspec.json.decode(raw, type=tuple[str, list[Any]])
        except (ValueError, msgspec.MsgspecError):
            raise InvalidQueryError(_BAD_CURSOR) from None
        if sort != self.sort_text:
            raise InvalidQueryError(
                f"cursor: it continues the list sorted by {sort!r}, not {self.sort_text!r}; "
                "repeat the sort of the page it came from (or leave `cursor` out)"
            )
        if len(values) != len(self.order):
            raise InvalidQueryError(_BAD_CURSOR)
        keys: list[Any] = []
        for key, value in zip(self.order, values, strict=True):
            try:
                converted = msgspec.convert(value, _KEY_TYPES[key.field])
            except msgspec.ValidationError:
                raise InvalidQueryError(_BAD_CURSOR) from None
            if isinstance(converted, Decimal) and not _storable(converted):
                raise InvalidQueryError(_BAD_CURSOR)
            if isinstance(converted, datetime) and not in_range(converted):
                raise InvalidQueryError(_BAD_CURSOR)
            keys.append(converted)
        return _after(self.order, keys)


class _Explain(Executable, ClauseElement):
    """`EXPLAIN (FORMAT JSON) <statement>`: the planner's expectations, nothing run."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


async def plan_of(session: Session, statement: Select[Any]) -> dict[str, Any]:
    """The plan PostgreSQL would run `statement` with (EXPLAIN (FORMAT JSON), nothing run)."""
    plan: Any = (await session.execute(_Explain(statement))).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return plan[0]["Plan"]


def count_up_to(query: ProductQuery, limit: int) -> Select[int]:
    """How many products match, counting no further than `limit` (a bounded read)."""
    return select(func.count()).select_from(query.matching().limit(limit).subquery())


async def matches(session: Session, query: ProductQuery) -> tuple[int, bool]:
    """(how many products match, whether that is exact): exact up to `EXACT_TOTAL_LIMIT`,
    above it the planner's estimate (never below what was counted)."""
    limit = EXACT_TOTAL_LIMIT
    count = int((await session.execute(count_up_to(query, limit + 1))).scalar_one())
    if count <= limit:
        return count, True
    plan = await plan_of(session, query.matching())
    return max(count, round(plan["Plan Rows"])), False


class ProductRepository(SQLAlchemyAsyncRepository[Product]):
    model_type = Product


class ProductNotFound(NotFound):
    title = "Product not found"

    def __init__(self, barcode: str) -> None:
        super().__init__(f"No product has barcode {barcode!r}.")


class CatalogService(SQLAlchemyAsyncRepositoryService[Product, ProductRepository]):
    """Reads the catalog; its writes are the functions of `products.writes`."""

    repository_type = ProductRepository

    async def page(
        self, query: ProductQuery, *, limit: int, offset: int = 0, cursor: str | None = None
    ) -> ProductPage:
        """`limit` products from `offset`, or after `cursor` (a previous page's `next`)."""
        statement = query.apply(select(Product))
        if cursor:
            if offset:
                raise InvalidQueryError(
                    "offset: a page starts at an offset or after a cursor, not both; "
                    "leave `offset` out with `cursor`"
                )
            statement = statement.where(query.read_cursor(cursor))
        session = self.repository.session
        # One row more than the page: whether there is a next page, without counting.
        rows = list((await session.scalars(statement.limit(limit + 1).offset(offset))).all())
        if len(rows) <= limit and not cursor and (rows or not offset):
            total, exact = offset + len(rows), True  # the last page: it counted the rest itself
        else:
            total, exact = await matches(session, query)
        following = query.cursor_after(rows[limit - 1]) if len(rows) > limit else None
        return ProductPage(
            items=[msgspec.convert(p, ProductOut, from_attributes=True) for p in rows[:limit]],
            total=total,
            limit=limit,
            offset=offset,
            total_exact=exact,
            next=following,
        )


# The columns of `ProductOut` but `state`, in its order.
_PRODUCT = """
SELECT p.barcode, p.name, p.price, p.quantity, p.last_updated, p.version,
       coalesce(s.synced_version, p.version), p.created_at, p.updated_at
FROM products p LEFT JOIN pending_products s ON s.product_id = p.id
WHERE p.barcode = $1
"""


async def product(connection: Any, barcode: str) -> ProductOut | None:
    """One product with its sync state; None when no product has `barcode`. On an asyncpg
    connection (`Container.connection`), which prepares the statement once per connection."""
    row: Any = await connection.fetchrow(_PRODUCT, barcode)
    if row is None:
        return None
    version: int = row[5]
    synced_version: int = row[6]
    return ProductOut(
        barcode=row[0],
        name=row[1],
        price=row[2],
        quantity=row[3],
        last_updated=row[4],
        version=version,
        synced_version=synced_version,
        state="pending" if version > synced_version else "synced",
        created_at=row[7],
        updated_at=row[8],
    )
