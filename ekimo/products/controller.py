"""PUT /products: import a CSV or XLSX file (multipart field `file`)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from http import HTTPStatus
from typing import IO, Annotated, Any, Literal

from litestar import Request, put
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
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
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Response
from litestar.types import ControllerRouterHandler
from python_multipart.multipart import MultipartParser, parse_options_header

from ekimo.container import Container
from ekimo.docs import problems
from ekimo.products.catalog_schemas import ImportQueued
from ekimo.products.importer import ImportFailed, ImportOptions, ImportReport, ImportService
from ekimo.products.jobs import ImportNotQueued, queue_import
from ekimo.products.readers import FileProblem

SPOOL_IN_MEMORY = 4 * 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024


class _Upload:
    """Streams a multipart body to a spooled temporary file, counting the file's bytes."""

    def __init__(self, boundary: bytes, limit: int) -> None:
        self.limit = limit
        self.file: IO[bytes] | None = None
        self.filename: str | None = None
        self.size = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._target: IO[bytes] | None = None
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._target = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") == b"file" and self.file is None:
            self.filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
            self._target = self.file

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target is None:
            return
        self.size += end - start
        if self.size > self.limit:
            raise _TooLarge
        self._target.write(data[start:end])

    def _part_end(self) -> None:
        self._target = None


class _TooLarge(Exception):
    pass


def _problem(
    *,
    status_code: int,
    detail: str,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> ProblemDetailsException:
    """A problem document whose title is the status phrase unless one is given."""
    return ProblemDetailsException(
        status_code=status_code,
        title=title or HTTPStatus(status_code).phrase,
        detail=detail,
        extra=extra,
    )


def _too_large(limit_mb: int) -> ProblemDetailsException:
    return _problem(
        status_code=413,
        detail=f"the file is larger than the {limit_mb} MB upload limit (MAX_UPLOAD_MB): "
        "split it, or import it with the `ekimo import` command",
    )


async def _receive_file(request: Request[Any, Any, Any], container: Container) -> _Upload:
    settings = container.settings
    limit = settings.max_upload_bytes
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise _problem(
            status_code=400,
            detail="send the file as multipart/form-data in a field named `file`",
        )
    announced = request.headers.get("content-length")
    if announced and announced.isdigit() and int(announced) > limit + MULTIPART_OVERHEAD:
        raise _too_large(settings.max_upload_mb)
    upload = _Upload(boundary, limit)
    try:
        async for chunk in request.stream():
            if chunk:
                upload.parser.write(chunk)
        upload.parser.finalize()
    except _TooLarge:
        if upload.file is not None:
            upload.file.close()
        raise _too_large(settings.max_upload_mb) from None
    except Exception as exc:
        if upload.file is not None:
            upload.file.close()
        if isinstance(exc, HTTPException):
            raise
        raise _problem(status_code=400, detail=f"malformed multipart body: {exc}") from None
    if upload.file is None:
        raise _problem(status_code=400, detail="no file: send it in a multipart field named `file`")
    upload.file.seek(0)
    return upload


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
    upload = await _receive_file(request, container)
    assert upload.file is not None
    scope: dict[str, Any] = dict(request.scope)
    user_id = getattr(scope.get("user"), "id", None)
    if run_async:
        return await _queue(container, upload, dry_run, on_error, user_id)
    try:
        report = await ImportService(container).run(
            upload.file,
            upload.filename or "",
            ImportOptions(dry_run=dry_run, on_error=on_error),
            user_id=user_id if isinstance(user_id, int) else None,
        )
    except FileProblem as problem:
        raise _problem(status_code=problem.status, detail=problem.message) from None
    except ImportFailed as failed:
        extra = _problem_members(failed.report) if failed.report is not None else None
        raise _problem(status_code=failed.status, detail=failed.message, extra=extra) from None
    finally:
        upload.file.close()
    if report.status == "rejected":
        raise _problem(
            status_code=422,
            title="Import rejected",
            detail=_rejected_detail(report),
            extra=_problem_members(report),
        )
    return report


def _problem_members(report: ImportReport) -> dict[str, Any]:
    """The report as problem-document members: RFC 9457 reserves `status` for the HTTP code."""
    members = report.to_dict()
    members["import_status"] = members.pop("status")
    return members


async def _queue(
    container: Container,
    upload: _Upload,
    dry_run: bool,
    on_error: Literal["reject", "skip"],
    user_id: object,
) -> Response[ImportQueued]:
    assert upload.file is not None
    try:
        import_id = await queue_import(
            container,
            upload.file,
            upload.filename or "",
            ImportOptions(dry_run=dry_run, on_error=on_error),
            user_id if isinstance(user_id, int) else None,
        )
    except FileProblem as problem:
        raise _problem(status_code=problem.status, detail=problem.message) from None
    except ImportNotQueued as exc:
        raise _problem(status_code=503, detail=str(exc)) from exc
    finally:
        upload.file.close()
    location = f"/imports/{import_id}"
    return Response(
        ImportQueued(import_id=import_id, status="queued", location=location),
        status_code=202,
        headers={"Location": location},
    )


def _rejected_detail(report: ImportReport) -> str:
    return (
        f"{report.rejected} of {report.rows} rows are invalid ({report.errors_total} errors); "
        "nothing was written: fix the rows listed in `errors`, or use on_error=skip to import "
        "the valid ones"
    )


routes: list[ControllerRouterHandler] = [import_products]
