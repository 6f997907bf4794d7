"""The console's Import page, an import's report and the Imports history, over HTTP."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings
from ekimo.users.auth import reset_rate_limits
from tests.conftest import serve
from tests.imports.conftest import csv_bytes, imports, products
from tests.imports.test_async_import import product_csv, products_locked
from tests.web.conftest import Console, ConsoleAs

GOOD = [
    ["0001234", "Widget", "19.99", "3", "2025-07-01T12:00:00"],
    ["808080808080", "Gadget, large", "0", "1.5", "2025-07-01T12:00:00+02:00"],
]
BAD = ["2222", "Bad price", "abc", "1", ""]
BAD_MESSAGE = "price must be a number like 19.99"
REPORT_URL = re.compile(r"/ui/imports/(\d+)$")


async def send(
    console: Console,
    content: bytes,
    *,
    action: str = "import",
    skip: bool = False,
    filename: str = "products.csv",
) -> httpx.Response:
    """The Import form as a browser posts it: token, file, then the checkbox and the button."""
    fields = {"action": action, **({"skip": "on"} if skip else {})}
    return await console.post(
        "/ui/import", data=fields, files={"file": (filename, content, "text/csv")}
    )


def report_id(page: httpx.Response) -> int:
    found = REPORT_URL.search(page.url.path)
    assert found, f"not an import's page: {page.url}"
    return int(found.group(1))


def text_of(page: httpx.Response) -> str:
    """The page's words, tags dropped and entities read, space collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


def rows_read(words: str, after: str) -> int:
    """The rows so far a running import's page shows (0 when none)."""
    found = re.search(rf"([\d,]+) rows {after}", words)
    return int(found.group(1).replace(",", "")) if found else 0


def error_rows(page: httpx.Response) -> list[list[str]]:
    """The cells of the errors table's body."""
    body = page.text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in cells]
        for cells in (re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in body.split("</tr>"))
        if cells
    ]


async def test_check_with_a_bad_row_lists_it_writes_nothing_and_says_what_next(
    console_as: ConsoleAs, container: Container
) -> None:
    editor = await console_as("editor")
    form = await editor.get("/ui/import")
    assert form.status_code == 200
    page = form.text
    assert 'enctype="multipart/form-data"' in page
    assert re.search(r'class="drop".*?<label for="file">File</label>', page, re.S)
    assert 'accept=".csv,.xlsx"' in page
    assert "Skip invalid rows" in page
    assert '<button type="submit" name="action" value="check"' in page
    assert '<button type="submit" name="action" value="import"' in page
    # The token before the file: a browser sends it first.
    assert page.index('name="_csrf_token"') < page.index('type="file"')

    checked = await send(editor, csv_bytes([GOOD[0], BAD]), action="check")
    assert checked.status_code == 200
    assert checked.history[0].status_code == 303  # reloading the report posts nothing
    words = text_of(checked)
    assert "Check of products.csv" in words
    assert "rejected" in words
    assert "The check found 1 of 2 rows invalid (1 error). Nothing was written." in words
    assert "fix the rows below in your file and Check it again" in words
    assert "Import with Skip invalid rows" in words
    assert 'href="/ui/import?skip=on"' in checked.text
    assert re.search(r"<th[^>]*>Row</th><th[^>]*>Column</th><th[^>]*>Value</th>", checked.text)
    assert error_rows(checked) == [["3", "price", "abc", BAD_MESSAGE]]
    assert await products(container) == {}

    # The rejected rows, to fix: the file's header and `error`, then the row as it was.
    link = re.search(r'href="([^"]+)"[^>]*>Download rejected rows<', checked.text)
    assert link
    assert link.group(1) == f"/ui/imports/{report_id(checked)}/errors.csv"
    download = await editor.get(link.group(1))
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert f"products-errors-{report_id(checked)}.csv" in download.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows == [
        ["barcode", "name", "price", "quantity", "last_updated", "error"],
        [*BAD, BAD_MESSAGE],
    ]

    # Ticked by the report's link.
    again = await editor.get("/ui/import?skip=on")
    assert re.search(r'name="skip" value="on" checked', again.text)


async def test_a_fixed_file_imports_and_a_rejected_import_writes_nothing(
    console_as: ConsoleAs, container: Container, client: httpx.AsyncClient
) -> None:
    editor = await console_as("editor")
    rejected = await send(editor, csv_bytes([GOOD[0], BAD]))
    words = text_of(rejected)
    assert "Import of products.csv" in words
    assert "The import was rejected: 1 of 2 rows invalid. Nothing was written." in words
    assert error_rows(rejected) == [["3", "price", "abc", BAD_MESSAGE]]
    assert await products(container) == {}

    applied = await send(editor, csv_bytes(GOOD))
    assert applied.status_code == 200
    words = text_of(applied)
    assert "applied" in words
    assert "Imported: 2 created, 0 updated, 0 unchanged." in words
    assert "2 rows 2 created 0 updated 0 unchanged 0 rejected" in words
    assert "<tbody>" not in applied.text  # no errors table
    assert "Download rejected rows" not in applied.text
    # Through the API as well: the product is in the catalog.
    token = await client.post(
        "/auth", data={"username": "admin", "password": "correct horse battery"}
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    product = await client.get("/products/0001234", headers=headers)
    assert product.status_code == 200
    assert product.json()["name"] == "Widget"
    # As the API's import does: who imported, in the history and the audit log.
    recorded = await imports(container)
    assert [(r["status"], r["username"], r["dry_run"]) for r in recorded] == [
        ("rejected", "editor-user", False),
        ("applied", "editor-user", False),
    ]
    audit = await client.get("/audit", headers=headers)
    assert any(e["action"] == "import.applied" for e in audit.json()["items"]), audit.text

    # A clean check says so and what to do next; the second import changes nothing.
    checked = await send(editor, csv_bytes(GOOD), action="check")
    assert "The file is valid. Importing it would create 0, update 0 and leave 2 unchanged." in (
        text_of(checked)
    )
    assert "choose the file again and press Import" in text_of(checked)


async def test_skip_invalid_rows_imports_the_good_ones(
    console_as: ConsoleAs, container: Container
) -> None:
    editor = await console_as("editor")
    content = csv_bytes([GOOD[0], BAD, GOOD[1]])
    checked = text_of(await send(editor, content, action="check", skip=True))
    assert "validated" in checked
    assert "1 of 3 rows is invalid. Nothing was written." in checked
    assert "Importing with Skip invalid rows would import the 2 rows that are valid" in checked
    assert await products(container) == {}

    page = await send(editor, content, skip=True)
    words = text_of(page)
    assert "Imported the 2 rows that were valid: 2 created, 0 updated, 0 unchanged." in words
    assert "1 row was invalid and skipped. Download the rejected rows, fix them" in words
    assert error_rows(page) == [["3", "price", "abc", BAD_MESSAGE]]
    assert "Download rejected rows" in page.text
    assert set(await products(container)) == {"0001234", "808080808080"}


async def test_a_post_without_a_valid_token_is_refused_and_writes_nothing(
    console_as: ConsoleAs, container: Container
) -> None:
    editor = await console_as("editor")
    await editor.csrf_token()  # the cookie is there; the form's token is not sent
    files = {"file": ("products.csv", csv_bytes(GOOD), "text/csv")}
    for data in ({"action": "import"}, {"_csrf_token": "0" * 128, "action": "import"}):
        refused = await editor.client.post("/ui/import", data=data, files=files)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "reload the page" in refused.text
    # Another browser's valid token is not this browser's.
    other = await console_as("admin")
    stolen = await other.csrf_token()
    refused = await editor.client.post(
        "/ui/import", data={"_csrf_token": stolen, "action": "import"}, files=files
    )
    assert refused.status_code == 403
    # Without the cookie at all, and a form not even multipart.
    editor.client.cookies.delete("ekimo_csrf", path="/ui")
    assert (await editor.client.post("/ui/import", data={"x": "1"})).status_code == 403
    assert await products(container) == {}
    assert await imports(container) == []


async def test_a_viewer_gets_no_import_page(console_as: ConsoleAs, container: Container) -> None:
    viewer = await console_as("viewer")
    catalog = await viewer.get("/ui/catalog")
    assert 'href="/ui/import"' not in catalog.text
    page = await viewer.get("/ui/import")
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "Not allowed" in page.text
    posted = await send(viewer, csv_bytes(GOOD))
    assert posted.status_code == 403
    assert "Not allowed" in posted.text
    assert await products(container) == {}
    # The history is theirs to read.
    assert (await viewer.get("/ui/imports")).status_code == 200


async def test_what_the_form_cannot_take_is_said_on_the_form(
    console_as: ConsoleAs, container: Container
) -> None:
    editor = await console_as("editor")
    wrong = await send(editor, b"barcode\n1\n", filename="products.txt")
    assert wrong.status_code == 400
    assert 'type="file"' in wrong.text  # the form again
    assert ".csv or .xlsx" in text_of(wrong) or "csv" in text_of(wrong)
    nothing = await editor.post("/ui/import", data={"action": "check"}, files={"x": ("a", b"")})
    assert nothing.status_code == 400
    assert "Choose a file to check or import." in text_of(nothing)
    empty = await send(editor, b"", filename="empty.csv")
    assert "could not be imported: the file is empty" in text_of(empty)
    assert "Nothing was written." in text_of(empty)
    assert await products(container) == {}


async def test_the_history_lists_imports_newest_first_and_links_their_reports(
    console_as: ConsoleAs, container: Container
) -> None:
    editor = await console_as("editor")
    first = report_id(await send(editor, csv_bytes(GOOD), filename="first.csv"))
    second = report_id(await send(editor, csv_bytes([BAD]), action="check", filename="second.csv"))
    page = await editor.get("/ui/imports")
    assert page.status_code == 200
    text = page.text
    assert text.index("second.csv") < text.index("first.csv")
    assert f'href="/ui/imports/{first}"' in text
    assert f'href="/ui/imports/{second}"' in text
    assert '<span class="badge applied">applied</span>' in text
    assert '<span class="badge rejected">rejected</span>' in text
    assert "editor-user" in text
    assert "2 imports, newest first" in text_of(page)
    report = await editor.get(f"/ui/imports/{first}")
    assert "Imported: 2 created" in text_of(report)

    missing = await editor.get("/ui/imports/999999")
    assert missing.status_code == 404
    assert "there is no import 999999" in missing.text
    assert (await editor.get("/ui/imports/999999/errors.csv")).status_code == 404
    assert (await editor.get(f"/ui/imports/{2**63}")).status_code == 404

    # Pages of 50, with Previous and Next.
    async with container.engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO imports (filename, format, sha256, dry_run, on_error, status, rows, "
            "created, updated, unchanged, rejected, errors, errors_total, errors_truncated, "
            "warnings, started_at, finished_at, duration_ms, created_at, updated_at, username) "
            "SELECT 'old-' || i || '.csv', 'csv', '', false, 'reject', 'applied', 1, 1, 0, 0, "
            "0, '[]', 0, false, '[]', now(), now(), 1, now(), now(), 'someone' "
            "FROM generate_series(1, 53) AS i"
        )
    one = await editor.get("/ui/imports")
    assert one.text.count('<span class="badge') == 50
    assert 'href="/ui/imports?offset=50" rel="next"' in one.text
    assert 'rel="prev"' not in one.text
    two = await editor.get("/ui/imports?offset=50")
    assert two.text.count('<span class="badge') == 5
    assert "first.csv" in two.text
    assert 'href="/ui/imports" rel="prev"' in two.text
    assert 'rel="next"' not in two.text
    assert (await editor.get("/ui/imports?offset=-1")).status_code == 400


class TestLargeFiles:
    """A file over CONSOLE_ASYNC_IMPORT_MB goes to the worker; its page follows it."""

    @pytest.fixture
    async def app(self, settings: Settings) -> Litestar:
        # Its own container and queue, with the in-process worker of `ekimo serve --worker`.
        own = Container(
            settings.with_values(
                console_async_import_mb=1, queue_name=f"{settings.queue_name}-console"
            )
        )
        await reset_rate_limits(own)
        return create_app(own, run_worker=True)

    @pytest.fixture
    async def client(self, app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
        async with serve(app) as test_client:
            yield test_client

    async def test_a_large_file_is_queued_and_its_page_ends_with_the_report(
        self, console_as: ConsoleAs, container: Container
    ) -> None:
        editor = await console_as("editor")
        # Under the threshold: imported while the page waits.
        small = await send(editor, csv_bytes(GOOD))
        assert "Imported: 2 created" in text_of(small)

        count = 40_000
        content = product_csv(count)
        assert len(content) > 1024 * 1024
        async with products_locked(container):  # the import reads every row, then waits
            page = await send(editor, content, filename="big.csv")
            import_id = report_id(page)
            assert 'data-refresh="2"' in page.text
            assert re.search(r'badge (queued|running)"', page.text)
            # Running, with every row read (the count may include the header line).
            deadline = time.monotonic() + 60
            while rows_read(text_of(page), "read so far") < count:
                assert time.monotonic() < deadline, text_of(page)
                await asyncio.sleep(0.2)
                page = await editor.get(f"/ui/imports/{import_id}")
            assert '<span class="badge running">running</span>' in page.text
            assert 'data-refresh="2"' in page.text
            listed = await editor.get("/ui/imports")
            assert rows_read(text_of(listed), "so far") >= count
            assert 'data-refresh="2"' in listed.text
        deadline = time.monotonic() + 60
        while "data-refresh" in page.text:
            assert time.monotonic() < deadline, text_of(page)
            await asyncio.sleep(0.2)
            page = await editor.get(f"/ui/imports/{import_id}")
        assert f"Imported: {count:,} created, 0 updated, 0 unchanged." in text_of(page)
        assert len(await products(container)) == count + 2
        async with container.engine.connect() as conn:
            stored = await conn.exec_driver_sql(
                f"SELECT size FROM import_uploads WHERE import_id = {import_id}"
            )
            assert stored.scalar() == len(content)  # it went through the queue


async def test_the_form_s_text_fields_are_bounded(
    console_as: ConsoleAs, container: Container
) -> None:
    editor = await console_as("editor")
    files = {"file": ("products.csv", csv_bytes(GOOD), "text/csv")}
    long = await editor.post("/ui/import", data={"action": "x" * 2000}, files=files)
    assert long.status_code == 400
    assert "longer than 1024 bytes" in text_of(long)
    many = await editor.post("/ui/import", data={f"f{i}": "1" for i in range(20)}, files=files)
    assert many.status_code == 400
    assert "More than 16 form fields besides the file." in text_of(many)
    assert await products(container) == {}
