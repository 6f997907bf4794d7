"""The console's catalog pages over HTTP: the table, search, state filter, sorting, pages,
exports, a product's page, and the readable answers to wrong addresses."""

from __future__ import annotations

import csv
import html
import io
import re
from html.parser import HTMLParser

import httpx
from openpyxl import load_workbook
from sqlalchemy import text

from ekimo.container import Container
from tests.conftest import PASSWORD
from tests.web.conftest import ConsoleAs

HEADER = "barcode,name,price,quantity,last_updated\n"
RED = "5901234123457,Red Widget,3.50,2,2026-11-01T10:00:00Z\n"
BLUE = "4006381333931,Blue Widget,9.99,5,2026-11-01T11:00:00Z\n"
GREEN = "0012345678905,Green Gadget,1.25,10.5,2026-11-02T09:30:00Z\n"


class Table(HTMLParser):
    """The first table of a page: its header texts, its rows' cell texts, and each header's
    attributes (aria-sort) and link. Text hidden from assistive technology is left out."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.header_attrs: list[dict[str, str | None]] = []
        self.header_links: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_header = False
        self._hidden = False
        self._tables = 0
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._tables += 1
        if self._tables != 1:
            return
        if dict(attrs).get("aria-hidden") == "true":
            self._hidden = True
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell, self._in_header = [], tag == "th"
            if tag == "th":
                self.header_attrs.append(dict(attrs))
        elif tag == "a" and self._in_header and self._cell is not None:
            self.header_links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._hidden = False
        if self._tables != 1 or tag not in ("th", "td") or self._cell is None:
            return
        value = " ".join("".join(self._cell).split())
        if tag == "th":
            self.headers.append(value)
        else:
            self.rows[-1].append(value)
        self._cell = None

    def handle_data(self, data: str) -> None:
        if self._tables == 1 and self._cell is not None and not self._hidden:
            self._cell.append(data)

    @property
    def body(self) -> list[list[str]]:
        """The rows of cells (the header row has none)."""
        return [row for row in self.rows if row]

    def column(self, header: str) -> list[str]:
        index = self.headers.index(header)
        return [row[index] for row in self.body]


def link_named(page: str, name: str) -> str:
    """The href of the link whose text is `name` (what a click would follow)."""
    found = re.search(rf'<a href="([^"]*)"[^>]*>\s*{re.escape(name)}\s*</a>', page)
    assert found, f"no link named {name!r}"
    return html.unescape(found.group(1))


async def api_headers(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    token = await client.post("/auth", data={"username": username, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def import_csv(client: httpx.AsyncClient, headers: dict[str, str], *rows: str) -> None:
    """Products through the API's import (PUT /products), as an editor's client sends them."""
    content = (HEADER + "".join(rows)).encode()
    answer = await client.put(
        "/products", files={"file": ("products.csv", content)}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "applied"


async def mark_synced(container: Container, barcode: str) -> None:
    """What an acknowledged sync writes: the external API has the current version."""
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "DELETE FROM pending_products WHERE product_id = "
                "(SELECT id FROM products WHERE barcode = :b)"
            ),
            {"b": barcode},
        )


async def test_the_table_shows_every_product_with_its_columns(
    console_as: ConsoleAs, client: httpx.AsyncClient
) -> None:
    editor = await console_as("editor")
    await import_csv(client, await api_headers(client, editor.username), RED, BLUE, GREEN)

    page = await editor.get("/ui/catalog")
    assert page.status_code == 200
    table = Table(page.text)
    assert table.headers == ["Barcode", "Name", "Price", "Quantity", "Last updated", "State"]
    assert table.column("Barcode") == ["0012345678905", "4006381333931", "5901234123457"]
    assert table.body[1] == [
        "4006381333931",
        "Blue Widget",
        "9.99",
        "5",
        "2026-11-01 11:00:00 UTC",
        "pending",
    ]
    assert table.column("Quantity")[0] == "10.5"
    assert "3 products" in page.text
    assert 'href="/ui/catalog/5901234123457"' in page.text
    # Sorted by barcode (the default): its header says so.
    assert table.header_attrs[0].get("aria-sort") == "ascending"
    assert 'for="q">Search' in page.text
    assert 'for="state">State' in page.text


async def test_search_finds_a_product_by_part_of_its_name(
    console_as: ConsoleAs, client: httpx.AsyncClient
) -> None:
    editor = await console_as("editor")
    await import_csv(client, await api_headers(client, editor.username), RED, BLUE, GREEN)

    found = await editor.get("/ui/catalog", params={"q": "red wid"})
    assert Table(found.text).column("Name") == ["Red Widget"]
    assert "1 product" in found.text
    assert 'value="red wid"' in found.text  # the field keeps what was searched

    none = await editor.get("/ui/catalog", params={"q": "nothing like it"})
    assert none.status_code == 200
    assert "No product matches these filters." in none.text
    assert "<table" not in none.text


async def test_the_state_filter_tells_pending_from_synced(
    console_as: ConsoleAs, client: httpx.AsyncClient, container: Container
) -> None:
    viewer = await console_as("viewer")
    editor = await console_as("editor")
    await import_csv(client, await api_headers(client, editor.username), RED, BLUE, GREEN)
    await mark_synced(container, "4006381333931")

    everything = await viewer.get("/ui/catalog")
    assert Table(everything.text).column("State") == ["pending", "synced", "pending"]
    for state in ("", "pending", "synced"):
        assert f'<option value="{state}"' in everything.text

    pending = await viewer.get("/ui/catalog", params={"state": "pending"})
    assert Table(pending.text).column("Name") == ["Green Gadget", "Red Widget"]
    synced = await viewer.get("/ui/catalog", params={"state": "synced"})
    assert Table(synced.text).column("Name") == ["Blue Widget"]
    assert '<option value="synced" selected>' in synced.text


async def test_a_column_header_sorts_and_a_second_click_reverses(
    console_as: ConsoleAs, client: httpx.AsyncClient
) -> None:
    editor = await console_as("editor")
    await import_csv(client, await api_headers(client, editor.username), RED, BLUE, GREEN)
    first = Table((await editor.get("/ui/catalog", params={"q": "g"})).text)
    price_link = first.header_links[first.headers.index("Price")]
    assert "q=g" in price_link  # the search stays

    ascending = Table((await editor.get(html.unescape(price_link))).text)
    assert ascending.column("Price") == ["1.25", "3.50", "9.99"]
    price = ascending.headers.index("Price")
    assert ascending.header_attrs[price].get("aria-sort") == "ascending"
    assert ascending.header_attrs[0].get("aria-sort") is None

    descending_link = html.unescape(ascending.header_links[price])
    descending = Table((await editor.get(descending_link)).text)
    assert descending.column("Price") == ["9.99", "3.50", "1.25"]
    assert descending.header_attrs[price].get("aria-sort") == "descending"


async def test_pages_go_forward_by_cursor_and_back(
    console_as: ConsoleAs, client: httpx.AsyncClient
) -> None:
    editor = await console_as("editor")
    await import_csv(client, await api_headers(client, editor.username), RED, BLUE, GREEN)

    first = await editor.get("/ui/catalog", params={"limit": 2, "sort": "-price"})
    assert Table(first.text).column("Name") == ["Blue Widget", "Red Widget"]
    assert "3 products · showing 1\N{EN DASH}2" in first.text
    assert "Previous" not in first.text

    second = await editor.get(link_named(first.text, "Next"))
    assert Table(second.text).column("Name") == ["Green Gadget"]
    assert "showing 3\N{EN DASH}3" in second.text
    assert "Next</a>" not in second.text

    back = await editor.get(link_named(second.text, "Previous"))
    assert Table(back.text).column("Name") == ["Blue Widget", "Red Widget"]


async def test_exports_hold_the_filtered_products(
    console_as: ConsoleAs, client: httpx.AsyncClient
) -> None:
    viewer = await console_as("viewer")
    editor = await console_as("editor")
    await import_csv(client, await api_headers(client, editor.username), RED, BLUE, GREEN)
    page = await viewer.get("/ui/catalog", params={"q": "widget", "sort": "-price"})

    as_csv = await viewer.get(link_named(page.text, "Export CSV"))
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows[0] == ["barcode", "name", "price", "quantity", "last_updated"]
    assert [r[1] for r in rows[1:]] == ["Blue Widget", "Red Widget"]

    as_xlsx = await viewer.get(link_named(page.text, "Export XLSX"))
    assert as_xlsx.status_code == 200
    assert ".xlsx" in as_xlsx.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(as_xlsx.content), read_only=True).active
    assert sheet is not None
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert [r[:2] for r in values[1:]] == [
        ["4006381333931", "Blue Widget"],
        ["5901234123457", "Red Widget"],
    ]


async def test_a_product_page_shows_its_fields_and_versions(
    console_as: ConsoleAs, client: httpx.AsyncClient, container: Container
) -> None:
    viewer = await console_as("viewer")
    editor = await console_as("editor")
    headers = await api_headers(client, editor.username)
    await import_csv(client, headers, RED)
    await mark_synced(container, "5901234123457")
    await import_csv(client, headers, RED.replace("3.50", "3.75"))  # version 2, synced 1

    catalog = await viewer.get("/ui/catalog")
    page = await viewer.get(link_named(catalog.text, "5901234123457"))
    assert page.status_code == 200
    fields = dict(re.findall(r"<dt>([^<]+)</dt><dd>(.*?)</dd>", page.text))
    assert fields["Name"] == "Red Widget"
    assert fields["Price"] == "3.75"
    assert fields["Version"] == "2"
    assert fields["Synced version"] == "1"
    assert "pending" in fields["State"]
    assert "Version 2 has not reached the external API yet" in page.text


async def test_an_unknown_barcode_is_a_404_page(console_as: ConsoleAs) -> None:
    viewer = await console_as("viewer")
    for barcode in ("4006381333931", "not-a-barcode"):
        page = await viewer.get(f"/ui/catalog/{barcode}")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "No product has barcode" in page.text


async def test_wrong_parameters_read_as_sentences_on_the_page(console_as: ConsoleAs) -> None:
    viewer = await console_as("viewer")
    for params, message in [
        ({"sort": "colour"}, "Sort: cannot sort by &#39;colour&#39;"),
        ({"state": "lost"}, "State: &#39;lost&#39; is not a state"),
        ({"offset": "-1"}, "Offset: &#39;-1&#39; is not a whole number"),
        ({"cursor": "garbage"}, "Cursor: not a cursor of this list"),
    ]:
        page = await viewer.get("/ui/catalog", params=params)
        assert page.status_code == 400, params
        assert page.headers["content-type"].startswith("text/html")
        assert message in page.text, (params, page.text)
        assert 'for="q">Search' in page.text  # the form stays, to correct the address

    export = await viewer.get("/ui/catalog/export.csv", params={"sort": "colour"})
    assert export.status_code == 400
    assert export.headers["content-type"].startswith("text/html")
    assert "cannot sort by" in export.text


async def test_an_empty_catalog_says_so_and_editors_get_a_way_to_import(
    console_as: ConsoleAs,
) -> None:
    editor = await console_as("editor")
    viewer = await console_as("viewer")
    for console, shows_import in ((editor, True), (viewer, False)):
        page = await console.get("/ui/catalog")
        assert "The catalog is empty." in page.text
        assert ('<a href="/ui/import">Import a spreadsheet</a>' in page.text) is shows_import
