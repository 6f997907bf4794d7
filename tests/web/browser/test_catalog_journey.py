"""The issue's journey, in a browser: check a spreadsheet with a bad row, read the error, download
the rejected rows, fix and import, find the product, export, sync."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from tests.faults.ekimo_process import Served
from tests.sync.fake_api import FakeApi
from tests.web.browser.journey import sign_up, spreadsheet

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SYNC_SECONDS = 30.0
GOOD = ["4006381333931", "Blue Widget", 9.99, 5, "2026-11-01T10:00:00Z"]
BAD = ["5901234123457", "Red Widget", "abc", 2, "2026-11-01T10:00:00Z"]
FIXED = ["5901234123457", "Red Widget", 3.5, 2, "2026-11-01T10:00:00Z"]


async def _choose(page: Page, rows: list[list[object]]) -> None:
    await page.get_by_label("File").set_input_files(
        {"name": "products.xlsx", "mimeType": XLSX, "buffer": spreadsheet(rows)}
    )


async def test_check_fix_import_find_export_and_sync(
    page: Page, console: Served, fake_api: FakeApi, screenshots: Path
) -> None:
    await sign_up(page, console.url, "maria")
    menu = page.get_by_role("navigation", name="Main")

    # Check: the bad row is named in the errors table, and nothing is written.
    await menu.get_by_role("link", name="Import", exact=True).click()
    await _choose(page, [GOOD, BAD])
    await page.get_by_role("button", name="Check", exact=True).click()
    errors = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="Message"))
    for header in ("Row", "Column", "Value", "Message"):
        await expect(errors.get_by_role("columnheader", name=header)).to_be_visible()
    bad_row = errors.get_by_role("row").filter(has_text="abc")
    await expect(bad_row).to_contain_text("price")
    await expect(bad_row.get_by_role("cell").first).to_have_text("3")  # the header is row 1
    await page.screenshot(path=screenshots / "console-check.png", full_page=True)

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download rejected rows").click()
    rejected = Path(await (await download_info.value).path()).read_text()
    assert "Red Widget" in rejected
    assert "abc" in rejected
    assert "Blue Widget" not in rejected

    # Fix and import.
    await menu.get_by_role("link", name="Import", exact=True).click()
    await _choose(page, [GOOD, FIXED])
    await page.get_by_role("button", name="Import", exact=True).click()
    await expect(page.get_by_text("applied", exact=True).first).to_be_visible()

    # Find it in the catalog, then export what the search shows.
    await menu.get_by_role("link", name="Catalog", exact=True).click()
    await page.get_by_label("Search").fill("Red Widget")
    await page.get_by_label("Search").press("Enter")
    products = page.get_by_role("table")
    await expect(products.get_by_role("cell", name="Red Widget")).to_be_visible()
    await expect(products.get_by_role("cell", name="Blue Widget")).to_have_count(0)
    await page.get_by_label("Search").fill("")
    await page.get_by_label("Search").press("Enter")
    await expect(products.get_by_role("cell", name="Blue Widget")).to_be_visible()
    await page.screenshot(path=screenshots / "console-catalog.png", full_page=True)

    await page.get_by_label("Search").fill("Red Widget")
    await page.get_by_label("Search").press("Enter")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Export CSV").click()
    exported = Path(await (await download_info.value).path()).read_text()
    assert "5901234123457" in exported
    assert "4006381333931" not in exported

    # Sync now: the run appears and ends; the external API received both products.
    await menu.get_by_role("link", name="Sync", exact=True).click()
    await page.get_by_role("button", name="Sync now").click()
    # The page reloads itself while the run is queued or running.
    runs = page.get_by_role("table")
    await expect(runs.get_by_text("succeeded")).to_be_visible(timeout=SYNC_SECONDS * 1000)
    await page.screenshot(path=screenshots / "console-sync.png", full_page=True)
    assert sorted(fake_api.delivered_barcodes()) == ["4006381333931", "5901234123457"]
