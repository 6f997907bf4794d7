"""Pages follow the role (a viewer sees no Import and no Sync now), and fit a phone's width."""

from __future__ import annotations

from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.conftest import PASSWORD
from tests.faults.ekimo_process import Served
from tests.web.browser.journey import sign_up

PHONE: ViewportSize = {"width": 390, "height": 844}


async def _log_in(page: Page, base_url: str, username: str) -> None:
    await page.goto(base_url + "/ui/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()


async def test_a_viewer_sees_no_import_and_no_sync_now(page: Page, console: Served) -> None:
    await sign_up(page, console.url, "admin")
    await page.get_by_role("link", name="Accounts").click()
    await page.get_by_label("Username").fill("vera")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Role", exact=True).select_option("viewer")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("cell", name="vera", exact=True)).to_be_visible()
    await page.get_by_role("button", name="Log out").click()

    await _log_in(page, console.url, "vera")
    menu = page.get_by_role("navigation", name="Main")
    await expect(menu.get_by_role("link", name="Catalog")).to_be_visible()
    await expect(menu.get_by_role("link", name="Import", exact=True)).to_have_count(0)
    await expect(menu.get_by_role("link", name="Accounts")).to_have_count(0)
    await menu.get_by_role("link", name="Sync").click()
    await expect(page.get_by_role("heading", name="Sync")).to_be_visible()
    await expect(page.get_by_role("button", name="Sync now")).to_have_count(0)

    # Typing the address is refused by the server, on a page, not with a JSON document.
    answer = await page.goto(console.url + "/ui/import")
    assert answer is not None
    assert answer.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("importing needs the editor role")


async def test_every_page_fits_a_phone(browser: Browser, console: Served) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True)
    page = await context.new_page()
    try:
        await sign_up(page, console.url, "admin")
        for path in ("/ui/catalog", "/ui/import", "/ui/imports", "/ui/sync", "/ui/accounts"):
            await page.goto(console.url + path)
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} is {overflow}px wider than a phone's screen"
            await expect(page.get_by_role("button", name="Log out")).to_be_visible()
    finally:
        await context.close()
