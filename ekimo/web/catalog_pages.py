"""The catalog: products with search, filter, sorting and pages; one product; exports.

The pages translate a query string into the API's `ProductQuery` and call the same reads as
GET /products, GET /products/{barcode} and GET /products/export; a parameter the user has to
correct is a sentence on the page, never a JSON document.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast, get_args
from urllib.parse import urlencode

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from litestar import Request, get
from litestar.datastructures import MultiDict
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Stream, Template
from litestar.types import ControllerRouterHandler

from ekimo.bounds import MAX_BIGINT, is_storable
from ekimo.container import Container
from ekimo.downloads import started
from ekimo.errors import InvalidInput
from ekimo.products import catalog, export
from ekimo.products.catalog import (
    DEFAULT_SORT,
    MAX_CURSOR_LENGTH,
    MAX_SORT_LENGTH,
    CatalogService,
    InvalidQueryError,
    ProductNotFound,
    ProductQuery,
)
from ekimo.products.schemas import ProductState
from ekimo.users.guards import allow
from ekimo.users.roles import READ_CATALOG
from ekimo.web.pages import render, sentence
from ekimo.web.session import CONSOLE_PATH

CATALOG_PATH = f"{CONSOLE_PATH}/catalog"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200  # a page a browser still shows quickly
STATES: tuple[str, ...] = get_args(ProductState)
# The table's sortable columns: (field of `sort`, header). State is derived, so not sortable.
SORTABLE_COLUMNS = (
    ("barcode", "Barcode"),
    ("name", "Name"),
    ("price", "Price"),
    ("quantity", "Quantity"),
    ("last_updated", "Last updated"),
)

_CATALOG = {"catalog": Provide(create_service_provider(CatalogService))}


def plain_number(value: Decimal) -> str:
    """A quantity as people write it: 5 rather than 5.000, 2.5 rather than 2.500."""
    return f"{value.normalize():f}"


def _whole_number(params: MultiDict[str], name: str, default: int, maximum: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) > maximum:
        raise InvalidQueryError(f"{name}: {raw!r} is not a whole number from 0 to {maximum}")
    return int(raw)


@dataclass(frozen=True)
class Filters:
    """What the catalog page shows, as the query string says it (checked by `query`)."""

    q: str = ""
    state: str = ""
    sort: str = DEFAULT_SORT

    @classmethod
    def of(cls, params: MultiDict[str]) -> Filters:
        return cls(
            q=params.get("q") or "",
            state=params.get("state") or "",
            sort=(params.get("sort") or "").strip() or DEFAULT_SORT,
        )

    def query(self) -> ProductQuery:
        """The API's query; `InvalidQueryError` saying what to correct."""
        if not is_storable(self.q):
            raise InvalidQueryError("search: the text must not contain the NUL character")
        if self.state and self.state not in STATES:
            raise InvalidQueryError(
                f"state: {self.state!r} is not a state; choose {' or '.join(STATES)}"
            )
        if len(self.sort) > MAX_SORT_LENGTH:
            raise InvalidQueryError(f"sort: longer than {MAX_SORT_LENGTH} characters")
        return ProductQuery(
            q=self.q or None,
            state=cast("ProductState", self.state) if self.state else None,
            sort=self.sort,
        )

    @property
    def active(self) -> bool:
        return bool(self.q or self.state)

    def params(self, **more: object) -> dict[str, str]:
        """The query string of these filters (defaults left out) and `more`."""
        values: dict[str, object] = {"q": self.q, "state": self.state, **more}
        if self.sort != DEFAULT_SORT:
            values["sort"] = self.sort
        return {k: str(v) for k, v in values.items() if v is not None and v != ""}

    def link(self, path: str = CATALOG_PATH, **more: object) -> str:
        query = urlencode(self.params(**more))
        return f"{path}?{query}" if query else path


@dataclass(frozen=True)
class Position:
    """Where the page starts: at `offset`, or (Next) after `cursor`, the previous page's last
    product, which stays fast deep in the catalog. With a cursor, `offset` only numbers rows."""

    limit: int = PAGE_SIZE
    offset: int = 0
    cursor: str | None = None

    @classmethod
    def of(cls, params: MultiDict[str]) -> Position:
        cursor = params.get("cursor") or None
        if cursor is not None and len(cursor) > MAX_CURSOR_LENGTH:
            raise InvalidQueryError("cursor: too long; use the Next link of the page")
        return cls(
            limit=_whole_number(params, "limit", PAGE_SIZE, MAX_PAGE_SIZE) or PAGE_SIZE,
            offset=_whole_number(params, "offset", 0, MAX_BIGINT),
            cursor=cursor,
        )


def _header(filters: Filters, query: ProductQuery, field: str, label: str) -> dict[str, Any]:
    """A column header: its link sorts by it, ascending first, and toggles when sorted by it."""
    first = query.order[0]
    sorted_here = first.field == field
    descending = sorted_here and first.descending
    toggled = field if descending or not sorted_here else f"-{field}"
    return {
        "label": label,
        "link": replace(filters, sort=toggled).link(),
        "aria_sort": ("descending" if descending else "ascending") if sorted_here else None,
        "numeric": field in ("price", "quantity"),
    }


def _page_links(
    filters: Filters, position: Position, shown: int, following: str | None
) -> dict[str, str | None]:
    limit = None if position.limit == PAGE_SIZE else position.limit
    previous = None
    if position.offset > 0:
        start = max(position.offset - position.limit, 0)
        previous = filters.link(offset=start or None, limit=limit)
    after = None
    if following is not None:
        after = filters.link(cursor=following, offset=position.offset + shown, limit=limit)
    return {"previous": previous, "next": after}


@get("/catalog", opt=allow(READ_CATALOG), dependencies=_CATALOG)
async def catalog_page(
    request: Request[Any, Any, Any], catalog: NamedDependency[CatalogService]
) -> Template:
    filters = Filters.of(request.query_params)
    context: dict[str, Any] = {"filters": filters, "states": STATES, "default_sort": DEFAULT_SORT}
    try:
        query = filters.query()
        position = Position.of(request.query_params)
        page = await catalog.page(
            query,
            limit=position.limit,
            offset=0 if position.cursor else position.offset,
            cursor=position.cursor,
        )
    except InvalidInput as exc:
        # The form stays, with what to correct; "Show all products" starts over.
        return render(
            request, "catalog.html", status_code=exc.status, error=sentence(exc.detail), **context
        )
    return render(
        request,
        "catalog.html",
        products=page.items,
        total=page.total,
        total_exact=page.total_exact,
        first_row=position.offset + 1,
        last_row=position.offset + len(page.items),
        columns=[_header(filters, query, f, label) for f, label in SORTABLE_COLUMNS],
        pages=_page_links(filters, position, len(page.items), page.next),
        export_csv=filters.link(f"{CATALOG_PATH}/export.csv"),
        export_xlsx=filters.link(f"{CATALOG_PATH}/export.xlsx"),
        number=plain_number,
        **context,
    )


def _download(chunks: Any, media_type: str, extension: str) -> Stream:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Stream(
        chunks,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="products-{stamp}.{extension}"'},
    )


# The translation GET /products/export makes (ekimo/products/controller.py), for the filters of
# the page: the same export functions, the same file.
@get("/catalog/export.csv", opt=allow(READ_CATALOG))
async def export_csv(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Stream:
    query = Filters.of(request.query_params).query()
    # Started here: a query that fails is an error page, not a download cut short.
    chunks = await started(export.csv_chunks(container.engine, query))
    return _download(chunks, export.CSV_MEDIA_TYPE, "csv")


@get("/catalog/export.xlsx", opt=allow(READ_CATALOG))
async def export_xlsx(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Stream:
    query = Filters.of(request.query_params).query()
    workbook = await export.build_xlsx(container.engine, query)
    return _download(export.file_chunks(workbook), export.XLSX_MEDIA_TYPE, "xlsx")


@get("/catalog/{barcode:str}", opt=allow(READ_CATALOG))
async def product_page(
    request: Request[Any, Any, Any],
    container: NamedDependency[Container],
    barcode: FromPath[str],
) -> Template:
    # Anything but 1 to 14 digits names no product, as in the API's path.
    found = None
    if barcode.isascii() and barcode.isdigit() and len(barcode) <= 14:
        # The API's own read (GET /products/{barcode}), on a pooled asyncpg connection.
        async with container.connection(discard_on_error=True) as connection:
            found = await catalog.product(connection, barcode)
    if found is None:
        raise ProductNotFound(barcode[:40])
    return render(request, "product.html", product=found, number=plain_number)


routes: list[ControllerRouterHandler] = [catalog_page, export_csv, export_xlsx, product_page]
