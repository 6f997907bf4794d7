"""Steps the browser tests share: signing up through the form, and spreadsheets to upload."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from playwright.async_api import Page, expect

from tests.conftest import PASSWORD

HEADER = ["barcode", "name", "price", "quantity", "last_updated"]


async def sign_up(page: Page, base_url: str, username: str) -> None:
    """Create an account through the console's own form; the browser is then logged in."""
    await page.goto(base_url + "/ui/register")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Password again").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Welcome, {username}")


def spreadsheet(rows: list[list[Any]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
