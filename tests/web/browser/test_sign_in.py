"""A newcomer's first minute: open ekimo, create the first account, log out, log in again."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.conftest import PASSWORD
from tests.faults.ekimo_process import Served


async def test_a_newcomer_signs_up_then_logs_out_and_in(page: Page, console: Served) -> None:
    await page.goto(console.url + "/")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    await page.get_by_role("link", name="Create an account").click()
    await page.get_by_label("Username").fill("maria")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Password again").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("status")).to_contain_text("Welcome, maria")
    await expect(page.get_by_role("link", name="Accounts")).to_be_visible()  # the first: admin

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("status")).to_have_text("You are logged out.")

    await page.get_by_label("Username").fill("maria")
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")

    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/ui/catalog$"))
    await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
