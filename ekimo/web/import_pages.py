"""Import a file from the console: Check (a dry run) or Import; the report, its errors and a
queued import's progress are the import's page (`history_pages`).

The form posts multipart: its file is streamed to a spooled file (`receive_file`), as
PUT /products does, and imported by the same function (`ekimo.imports.submit`). Litestar's CSRF
middleware would read the whole form into memory to find the token, so this route is left out
of it and checks the token itself, from the text field sent before the file. A file over
CONSOLE_ASYNC_IMPORT_MB is queued for the worker (as PUT /products?async=true). Either way the
answer is a redirect to the import's report (`history_pages`), so reloading it posts nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, generate_csrf_hash
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler
from litestar.utils.scope.state import ScopeState

from ekimo.container import Container
from ekimo.errors import Problem
from ekimo.imports.errors import FileProblem, ImportFailed
from ekimo.imports.schemas import ImportOptions
from ekimo.imports.submit import import_later, import_now
from ekimo.uploads import FieldsCheck, receive_file
from ekimo.users.guards import allow
from ekimo.users.roles import IMPORT
from ekimo.web.pages import redirect, render, sentence
from ekimo.web.session import CONSOLE_PATH, principal_of

IMPORT_PATH = f"{CONSOLE_PATH}/import"
IMPORTS_PATH = f"{CONSOLE_PATH}/imports"
# The cookie and form field of the console's CSRF protection (ekimo.web.console.ConsoleCSRF).
CSRF_COOKIE = "ekimo_csrf"
CSRF_FIELD = "_csrf_token"
CSRF_HEADER = "x-csrftoken"
# The route option that leaves a route out of Litestar's CSRF middleware (CSRFConfig's
# `exclude_from_csrf_key`).
EXCLUDE_FROM_CSRF = "exclude_from_csrf"
ACCEPTED = ".csv,.xlsx"


def _decoded(token: str, secret: str) -> str | None:
    """The random part of a token the console issued (secret + HMAC of it), else None."""
    if len(token) <= CSRF_SECRET_LENGTH:
        return None
    random_part, signature = token[:CSRF_SECRET_LENGTH], token[CSRF_SECRET_LENGTH:]
    expected = generate_csrf_hash(token=random_part, secret=secret)
    return random_part if hmac.compare_digest(signature, expected) else None


def tokens_match(sent: str | None, cookie: str | None, secret: str) -> bool:
    """Litestar's CSRFMiddleware's test: both tokens signed with `secret`, and the same."""
    if not sent or not cookie:
        return False
    mine, theirs = _decoded(sent, secret), _decoded(cookie, secret)
    return mine is not None and theirs is not None and hmac.compare_digest(mine, theirs)


def _csrf_check(request: Request[Any, Any, Any], container: Container) -> FieldsCheck:
    """The check `receive_file` runs on the fields sent before the file."""
    secret = container.settings.secret_key
    assert secret is not None, "the container fills the secret key"
    cookie = request.cookies.get(CSRF_COOKIE)

    def check(fields: Mapping[str, str]) -> None:
        sent = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)
        if cookie is None or not tokens_match(sent, cookie, secret):
            # The message the console's error pages answer as an expired form (errors.py).
            raise PermissionDeniedException("CSRF token verification failed")
        # As the middleware does: the page answering this post has the token for its forms.
        ScopeState.from_scope(request.scope).csrf_token = cookie

    return check


def _form(
    request: Request[Any, Any, Any],
    container: Container,
    *,
    status_code: int = 200,
    error: str | None = None,
    skip: bool = False,
    headers: dict[str, str] | None = None,
) -> Template:
    settings = container.settings
    return render(
        request,
        "import.html",
        status_code=status_code,
        headers=headers,
        error=error,
        skip=skip,
        accept=ACCEPTED,
        max_upload_mb=settings.max_upload_mb,
        async_mb=settings.console_async_import_mb,
    )


@get("/import", opt=allow(IMPORT))
async def import_page(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Template:
    """The form: a file, Skip invalid rows, Check or Import. `?skip=on` ticks the box (the
    report of a check with errors links here so)."""
    return _form(request, container, skip=bool(request.query_params.get("skip")))


@post(
    "/import",
    opt={**allow(IMPORT), EXCLUDE_FROM_CSRF: True},
    request_max_body_size=None,  # bounded by MAX_UPLOAD_MB as it streams in (receive_file)
)
async def import_file(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Template | Redirect:
    try:
        upload = await receive_file(request, container, _csrf_check(request, container))
    except Problem as exc:
        # No file, not multipart, too large: the form again, saying what to do.
        detail = "Choose a file to check or import." if "no file" in exc.detail else exc.detail
        kept = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "connection"}
        return _form(
            request, container, status_code=exc.status, error=sentence(detail), headers=kept
        )
    assert upload.file is not None
    fields = upload.fields
    skip = fields.get("skip") not in (None, "", "off")
    options = ImportOptions(
        dry_run=fields.get("action", "import") == "check",
        on_error="skip" if skip else "reject",
    )
    filename = upload.filename or ""
    actor = principal_of(request)
    with upload.file:
        try:
            if upload.size > container.settings.console_async_import_bytes:
                import_id = await import_later(container, upload.file, filename, options, actor)
                return redirect(f"{IMPORTS_PATH}/{import_id}")
            report = await import_now(container, upload.file, filename, options, actor)
        except ImportFailed as failed:
            # The file as a whole could not be read; recorded (with its reason) when it could
            # be opened at all, else said here.
            if failed.report is not None and failed.report.import_id is not None:
                return redirect(f"{IMPORTS_PATH}/{failed.report.import_id}")
            return _form(
                request,
                container,
                status_code=failed.status,
                error=sentence(failed.message),
                skip=skip,
            )
        except FileProblem as problem:  # not a .csv or .xlsx file name
            return _form(
                request,
                container,
                status_code=problem.status,
                error=sentence(problem.message),
                skip=skip,
            )
    # Every run is recorded, so it has its page.
    return redirect(f"{IMPORTS_PATH}/{report.import_id}" if report.import_id else IMPORTS_PATH)


routes: list[ControllerRouterHandler] = [import_page, import_file]
