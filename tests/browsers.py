"""Headless Chromium for the console's browser tests: Debian's build driven by Playwright, a
page at the size a laptop shows (1,280 x 800) that records every console error and uncaught
exception, and where the screenshots go (`test-artifacts/console/`, git-ignored)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "console"
LAPTOP = {"width": 1280, "height": 800}


@asynccontextmanager
async def chromium_page(errors: list[str]) -> AsyncIterator[Page]:
    """A fresh page in headless Chromium at 1,280 x 800; console errors and page exceptions are
    appended to `errors` as they happen."""
    assert CHROMIUM.exists(), "run scripts/ensure_chromium.sh to install Debian's chromium"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(viewport=LAPTOP, accept_downloads=True)
            page = await context.new_page()
            page.on(
                "console",
                lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: errors.append(f"exception: {e}"))
            yield page
        finally:
            await browser.close()


async def fits_the_width(page: Page) -> bool:
    """Whether the page needs no horizontal scrolling at its viewport's width."""
    return bool(
        await page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )
