"""HTTP: browse the catalog, export it, the history of imports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Stream
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo.container import Container
from ekimo.docs import problems
from ekimo.products import export, history
from ekimo.products.catalog import (
    DEFAULT_SORT,
    MAX_PAGE_SIZE,
    SORTABLE_FIELDS,
    CatalogService,
    ImportHistory,
    InvalidQueryError,
    ProductQuery,
)
from ekimo.products.catalog_schemas import (
    ExportFormat,
    ImportOut,
    ImportPage,
    ImportSummary,
    ProductOut,
    ProductPage,
    ProductState,
)

_SORT_HELP = (
    f"Comma-separated fields among {', '.join(SORTABLE_FIELDS)}; "
    "a leading '-' sorts descending (e.g. `-updated_at,barcode`)."
)


def provide_product_query(
    barcode: Annotated[
        list[str] | None,
        QueryParameter(description="Only these barcodes (repeat the parameter for several)."),
    ] = None,
    q: Annotated[
        str | None, QueryParameter(description="Name contains this text (case-insensitive).")
    ] = None,
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
    sort: Annotated[str, QueryParameter(description=_SORT_HELP)] = DEFAULT_SORT,
) -> ProductQuery:
    try:
        return ProductQuery(
            barcodes=tuple(barcode or ()),
            q=q,
            state=product_state,
            updated_since=updated_since,
            sort=sort,
        )
    except InvalidQueryError as exc:
        raise ProblemDetailsException(
            status_code=400, title="Invalid query parameter", detail=str(exc)
        ) from None


_query_dependency = {"product_query": Provide(provide_product_query, sync_to_thread=False)}


@get(
    "/products",
    tags=["catalog"],
    summary="List products",
    dependencies=_query_dependency,
    responses=problems(400, 401),
    cache=False,
)
async def list_products(
    db_session: NamedDependency[AsyncSession],
    product_query: NamedDependency[ProductQuery],
    limit: Annotated[
        int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description=f"At most {MAX_PAGE_SIZE}.")
    ] = 100,
    offset: Annotated[int, QueryParameter(ge=0)] = 0,
) -> ProductPage:
    """A page of the catalog, filtered and sorted; `total` counts every match."""
    items, total = await CatalogService(db_session).page(product_query, limit=limit, offset=offset)
    return ProductPage(
        items=[ProductOut.from_model(p) for p in items], total=total, limit=limit, offset=offset
    )


@get(
    "/products/export",
    tags=["catalog"],
    summary="Export products as CSV or XLSX",
    dependencies=_query_dependency,
    responses=problems(400, 401),
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
        content = export.csv_chunks(container.engine, product_query)
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
    tags=["catalog"],
    summary="Get a product",
    cache=False,
    responses=problems(400, 401, 404),
)
async def get_product(
    db_session: NamedDependency[AsyncSession], barcode: FromPath[str]
) -> ProductOut:
    """The product with its sync state: `version`, `synced_version`, `state`."""
    product = await CatalogService(db_session).get(barcode)
    if product is None:
        raise ProblemDetailsException(
            status_code=404,
            title="Product not found",
            detail=f"No product has barcode {barcode!r}.",
        )
    return ProductOut.from_model(product)


@get(
    "/imports",
    tags=["imports"],
    summary="Import history, newest first",
    cache=False,
    responses=problems(400, 401),
)
async def list_imports(
    db_session: NamedDependency[AsyncSession],
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)] = 50,
    offset: Annotated[int, QueryParameter(ge=0)] = 0,
) -> ImportPage:
    """Every import (applied, validated, rejected, queued, running), newest first."""
    items, total = await ImportHistory(db_session).page(limit=limit, offset=offset)
    return ImportPage(
        items=[ImportSummary.from_model(i, rows_done) for i, rows_done in items],
        total=total,
        limit=limit,
        offset=offset,
    )


def _no_import(import_id: int) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=404,
        title="Import not found",
        detail=f"There is no import {import_id}; GET /imports lists them.",
    )


@get(
    "/imports/{import_id:int}",
    tags=["imports"],
    summary="An import's report",
    cache=False,
    responses=problems(400, 401, 404),
)
async def get_import(
    db_session: NamedDependency[AsyncSession], import_id: FromPath[int]
) -> ImportOut:
    """The report; an asynchronous import is `queued`, then `running` (with `rows_done`),
    then has its final report."""
    found = await ImportHistory(db_session).get(import_id)
    if found is None:
        raise _no_import(import_id)
    return ImportOut.from_model(*found)


@get(
    "/imports/{import_id:int}/errors.csv",
    tags=["imports"],
    summary="The rejected rows of an import, to fix and upload again",
    cache=False,
    responses=problems(400, 401, 404),
    media_type="text/csv",
)
async def import_errors_csv(
    container: NamedDependency[Container],
    db_session: NamedDependency[AsyncSession],
    import_id: FromPath[int],
) -> Stream:
    """The file's header plus an `error` column, then every rejected row exactly as it was in
    the file, with what is wrong with it. Fix the rows and upload the file (the `error`
    column is ignored by the import)."""
    found = await ImportHistory(db_session).get(import_id)
    if found is None:
        raise _no_import(import_id)
    item, _ = found
    if item.status in ("queued", "running"):
        raise ProblemDetailsException(
            status_code=409,
            title="Import not finished",
            detail=f"Import {import_id} is {item.status}; its errors.csv exists once it has "
            f"finished (GET /imports/{import_id}).",
        )
    stem = item.filename.rsplit(".", 1)[0] or "import"
    return Stream(
        history.errors_csv(container.engine, import_id),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{_safe(stem)}-errors-{import_id}.csv"'
        },
    )


def _safe(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)[:80]


routes: list[ControllerRouterHandler] = [
    list_products,
    export_products,
    get_product,
    list_imports,
    get_import,
    import_errors_csv,
]
