"""Browser tests: a real `ekimo serve` (with its worker) on this run's database, driven through
the system's Chromium by Playwright. No browser is downloaded: `apt-get install chromium`.

`EKIMO_SCREENSHOTS=DIR` keeps the pages the tests photograph (the README's images: `just
screenshots`); otherwise they go to the test's temporary directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.faults.ekimo_process import Served, bytecode_cached, served
from tests.sync.fake_api import FakeApi

CHROMIUM = os.environ.get("EKIMO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Long enough for a page on a busy CI machine; a step that hangs still fails in seconds.
STEP_MS = 15_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # CI runs them once, in its PostgreSQL 15 + Redis run (`-m "not browser"` in the other).
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set EKIMO_CHROMIUM)"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh browser profile (no cookies), the width of a laptop screen."""
    context = await browser.new_context(
        accept_downloads=True, viewport={"width": 1280, "height": 860}
    )
    context.set_default_timeout(STEP_MS)
    opened = await context.new_page()
    yield opened
    await context.close()


@pytest.fixture
def console(
    cli_env: dict[str, str],
    fake_api: FakeApi,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """`ekimo serve` as a user runs it, syncing to the test's fake external API."""
    env = bytecode_cached(
        {
            **cli_env,
            "SYNC_BASE_URL": fake_api.url,
            "SYNC_USERNAME": "ekimo",
            "SYNC_PASSWORD": "secret",
        },
        tmp_path_factory.getbasetemp() / "pycache",
    )
    with served(env, tmp_path) as server:
        yield server
        server.stop()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    wanted = os.environ.get("EKIMO_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
