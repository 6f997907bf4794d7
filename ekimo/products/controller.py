"""HTTP: browse the catalog, one product, export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from litestar import get
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from ekimo.bounds import instant
from ekimo.container import Container
from ekimo.docs import problems
from ekimo.downloads import started
from ekimo.params import Offset, page_size, text
from ekimo.products import catalog, export
from ekimo.products.catalog import (
    CURSOR_PATTERN,
    DEFAULT_SORT,
    MAX_CURSOR_LENGTH,
    MAX_PAGE_SIZE,
    MAX_SORT_LENGTH,
    SORTABLE_FIELDS,
    CatalogService,
    ProductNotFound,
    ProductQuery,
)
from ekimo.products.schemas import (
    ExportFormat,
    ProductOut,
    ProductPage,
    ProductState,
)
from ekimo.users.guards import allow
from ekimo.users.roles import READ_CATALOG

_SORT_HELP = (
    f"Comma-separated fields among {', '.join(SORTABLE_FIELDS)}; "
    "a leading '-' sorts descending (e.g. `-updated_at,barcode`). Ties are broken by the "
    "order of creation, in the first field's direction."
)


def provide_product_query(
    barcode: Annotated[
        list[str] | None,
        QueryParameter(description="Only these barcodes (repeat the parameter for several)."),
    ] = None,
    q: Annotated[str | None, text("Name contains this text (case-insensitive).")] = None,
    product_state: Annotated[
        ProductState | None,
        QueryParameter(
            name="state",
            description="`pending`: changed since the last sync; `synced`: the external API "
            "has the current version.",
        ),
    ] = None,
    updated_since: Annotated[
        datetime | None,
        QueryParameter(
            description="Only products ekimo created or changed at or after this ISO 8601 "
            "instant (`updated_at`; UTC when no offset is given)."
        ),
    ] = None,
    sort: Annotated[
        str, QueryParameter(max_length=MAX_SORT_LENGTH, description=_SORT_HELP)
    ] = DEFAULT_SORT,
) -> ProductQuery:
    return ProductQuery(
        barcodes=tuple(barcode or ()),
        q=q,
        state=product_state,
        updated_since=None if updated_since is None else instant(updated_since, "updated_since"),
        sort=sort,
    )


# A barcode in the path: 1 to 14 digits, as the import and the receiver store them; anything
# else names no product (404, from `problem_documents`).
Barcode = Annotated[str, PathParameter(pattern=r"^[0-9]{1,14}$", description="1 to 14 digits.")]

_query_dependency = {"product_query": Provide(provide_product_query, sync_to_thread=False)}
_catalog = {"catalog": Provide(create_service_provider(CatalogService))}


@get(
    "/products",
    opt=allow(READ_CATALOG),
    tags=["catalog"],
    summary="List products",
    dependencies={**_query_dependency, **_catalog},
    responses=problems(400, 401, 422),
    cache=False,
)
async def list_products(
    catalog: NamedDependency[CatalogService],
    product_query: NamedDependency[ProductQuery],
    limit: Annotated[int, page_size(MAX_PAGE_SIZE)] = 100,
    offset: Offset = 0,
    cursor: Annotated[
        str | None,
        QueryParameter(
            max_length=MAX_CURSOR_LENGTH,
            pattern=CURSOR_PATTERN,
            description="The `next` of the previous page: this page starts after that page's "
            "last product, as fast deep in the catalog as on the first page (an `offset` "
            "reads every product it skips). Same filters and sort as that page; not with "
            "`offset`.",
        ),
    ] = None,
) -> ProductPage:
    """A page of the catalog, filtered and sorted; `total` counts every match (an estimate,
    flagged by `total_exact: false`, when they are many). Walk the whole catalog with `next`."""
    return await catalog.page(product_query, limit=limit, offset=offset, cursor=cursor)


@get(
    "/products/export",
    opt=allow(READ_CATALOG),
    tags=["catalog"],
    summary="Export products as CSV or XLSX",
    dependencies=_query_dependency,
    responses=problems(400, 401, 422),
    cache=False,
    response_description="The file, in the import's columns: barcode, name, price, quantity, "
    "last_updated.",
)
async def export_products(
    container: NamedDependency[Container],
    product_query: NamedDependency[ProductQuery],
    file_format: Annotated[ExportFormat, QueryParameter(name="format")] = "csv",
) -> Stream:
    """The selected products (same filters as the list) as a file that imports unchanged.

    Streamed: the server reads the catalog batch by batch. Text starting with `=`, `+`, `-` or
    `@` is prefixed with `'` so spreadsheets don't run it; the import removes the prefix.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if file_format == "csv":
        # Started here: a query that fails is a problem document, not a download cut short.
        content = await started(export.csv_chunks(container.engine, product_query))
        media_type = export.CSV_MEDIA_TYPE
    else:
        content = export.file_chunks(await export.build_xlsx(container.engine, product_query))
        media_type = export.XLSX_MEDIA_TYPE
    return Stream(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="products-{stamp}.{file_format}"'},
    )


@get(
    "/products/{barcode:str}",
    opt=allow(READ_CATALOG),
    tags=["catalog"],
    summary="Get a product",
    cache=False,
    responses=problems(400, 401, 404),
)
async def get_product(container: NamedDependency[Container], barcode: Barcode) -> ProductOut:
    """The product with its sync state: `version`, `synced_version`, `state`."""
    # Not Advanced Alchemy's session and service: for the API's most frequent read, their
    # per-request work cost several times the query (a pooled asyncpg connection here).
    async with container.connection(discard_on_error=True) as connection:
        found = await catalog.product(connection, barcode)
    if found is None:
        raise ProductNotFound(barcode)
    return found


routes: list[ControllerRouterHandler] = [list_products, export_products, get_product]
