"""HTTP: import a CSV or XLSX file (PUT /products, multipart field `file`), and the history of
imports with their reports and rejected rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from advanced_alchemy.service import OffsetPagination
from litestar import Request, get, put
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import Parameter, QueryParameter
from litestar.response import Response, Stream
from litestar.types import ControllerRouterHandler

from ekimo.container import Container
from ekimo.docs import problems
from ekimo.downloads import started
from ekimo.imports.errors import ImportRejected
from ekimo.imports.history import ImportHistory, errors_csv
from ekimo.imports.schemas import (
    ImportOptions,
    ImportOut,
    ImportQueued,
    ImportReport,
    ImportSummary,
)
from ekimo.imports.submit import import_later, import_now
from ekimo.params import Id, Offset, page_size
from ekimo.products.catalog import MAX_PAGE_SIZE
from ekimo.uploads import receive_file
from ekimo.users.guards import allow
from ekimo.users.principals import Principal
from ekimo.users.roles import IMPORT, READ_IMPORTS


@dataclass
class _ImportOperation(Operation):
    """The handler reads the raw multipart stream: declare its body (Swagger UI file picker)."""

    def __post_init__(self) -> None:
        file_schema = Schema(
            type=OpenAPIType.OBJECT,
            required=["file"],
            properties={
                "file": Schema(
                    type=OpenAPIType.STRING,
                    format=OpenAPIFormat.BINARY,
                    description="The catalog, .csv or .xlsx (columns name, price, quantity, "
                    "last_updated, barcode).",
                )
            },
        )
        self.request_body = RequestBody(
            required=True,
            content={"multipart/form-data": OpenAPIMediaType(schema=file_schema)},
        )


@put(
    "/products",
    opt=allow(IMPORT),
    summary="Import products from a CSV or XLSX file",
    description=(
        "Multipart upload, field `file` (.csv or .xlsx). Every row is validated; with "
        "`on_error=reject` (default) any invalid row rejects the whole file (422, nothing "
        "written), with `skip` the valid rows are applied and the invalid ones reported. "
        "`dry_run=true` validates and counts without writing. One transaction per import."
    ),
    tags=["products"],
    request_max_body_size=None,
    status_code=200,
    responses={
        **problems(400, 401, 413, 503),
        202: ResponseSpec(
            ImportQueued,
            generate_examples=False,
            description="async=true: queued; GET the `Location` (/imports/{id}) for progress",
        ),
        422: ResponseSpec(
            ImportReport,
            generate_examples=False,
            media_type="application/problem+json",
            description="Rejected (on_error=reject): a problem document with the report, "
            "`errors` naming row and column; nothing was written",
        ),
    },
    operation_class=_ImportOperation,
)
async def import_products(
    request: Request[Any, Any, Any],
    container: NamedDependency[Container],
    dry_run: bool = Parameter(default=False, description="Validate and count, write nothing."),
    on_error: Literal["reject", "skip"] = Parameter(
        default="reject",
        description="reject: any invalid row → 422; skip: apply the valid rows.",
        examples=[Example(value="reject"), Example(value="skip")],
    ),
    run_async: Annotated[
        bool,
        QueryParameter(
            name="async",
            description="Answer 202 at once and import on the worker; the `Location` header "
            "(GET /imports/{id}) shows queued, running (rows so far), then the report.",
        ),
    ] = False,
) -> ImportReport | Response[ImportQueued]:
    upload = await receive_file(request, container)
    assert upload.file is not None
    user = dict(request.scope).get("user")
    actor = user if isinstance(user, Principal) else None
    options = ImportOptions(dry_run=dry_run, on_error=on_error)
    with upload.file:
        if run_async:
            import_id = await import_later(
                container, upload.file, upload.filename or "", options, actor
            )
            location = f"/imports/{import_id}"
            return Response(
                ImportQueued(import_id=import_id, status="queued", location=location),
                status_code=202,
                headers={"Location": location},
            )
        report = await import_now(container, upload.file, upload.filename or "", options, actor)
    if report.status == "rejected":
        raise ImportRejected(report)
    return report


_history = {"history": Provide(create_service_provider(ImportHistory))}


@get(
    "/imports",
    opt=allow(READ_IMPORTS),
    tags=["imports"],
    summary="Import history, newest first",
    cache=False,
    responses=problems(400, 401, 422),
    dependencies=_history,
)
async def list_imports(
    history: NamedDependency[ImportHistory],
    limit: Annotated[int, page_size(MAX_PAGE_SIZE)] = 50,
    offset: Offset = 0,
) -> OffsetPagination[ImportSummary]:
    """Every import (applied, validated, rejected, queued, running), newest first."""
    return await history.page(limit=limit, offset=offset)


@get(
    "/imports/{import_id:int}",
    opt=allow(READ_IMPORTS),
    tags=["imports"],
    summary="An import's report",
    cache=False,
    responses=problems(400, 401, 404),
    dependencies=_history,
)
async def get_import(history: NamedDependency[ImportHistory], import_id: Id) -> ImportOut:
    """The report; an asynchronous import is `queued`, then `running` (with `rows_done`),
    then has its final report."""
    return await history.report(import_id)


@get(
    "/imports/{import_id:int}/errors.csv",
    opt=allow(READ_IMPORTS),
    tags=["imports"],
    summary="The rejected rows of an import, to fix and upload again",
    cache=False,
    responses=problems(400, 401, 404),
    media_type="text/csv",
    dependencies=_history,
)
async def import_errors_csv(
    container: NamedDependency[Container],
    history: NamedDependency[ImportHistory],
    import_id: Id,
) -> Stream:
    """The file's header plus an `error` column, then every rejected row exactly as it was in
    the file, with what is wrong with it. Fix the rows and upload the file (the `error`
    column is ignored by the import)."""
    return await errors_download(container, history, import_id)


async def errors_download(container: Container, history: ImportHistory, import_id: int) -> Stream:
    """The rejected rows of a finished import as a CSV attachment (the API's and the
    console's download): `ImportNotFound`, `ImportNotFinished` before the stream starts."""
    item = await history.finished(import_id)
    stem = item.filename.rsplit(".", 1)[0] or "import"
    return Stream(
        # Started here: a query that fails is a problem document, not a download cut short.
        await started(errors_csv(container.engine, import_id)),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{_safe(stem)}-errors-{import_id}.csv"'
        },
    )


def _safe(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)[:80]


routes: list[ControllerRouterHandler] = [
    import_products,
    list_imports,
    get_import,
    import_errors_csv,
]
