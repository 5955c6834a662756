"""Debian's headless Chromium driven by Playwright (test tools cannot download a browser here)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[1] / "var" / "screenshots"  # git-ignored
# As root Chromium needs --no-sandbox; without the networking flags it keeps dialling Google's hosts,
# which this closed network refuses (DESIGN.md).
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-quic", "--no-first-run",
]  # fmt: skip


@contextlib.contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, heading: str, timeout_ms: int = 90_000):
    """A new tab on `url`, returned once the page's heading has rendered (Streamlit draws over a websocket)."""
    page = browser.new_page(viewport={"width": 1280, "height": 1100}, accept_downloads=True)
    page.goto(url)
    slug = re.sub(r"[^a-z0-9]+", "_", heading.lower()).strip("_")
    with page_on_failure(page, SHOTS / f"failed_{slug}.png"):
        page.get_by_role("heading", name=heading, exact=True).wait_for(timeout=timeout_ms)
    return page


@contextlib.contextmanager
def page_on_failure(page, screenshot: Path) -> Iterator[None]:
    """A wait that times out fails with what the page showed: its text, and a screenshot to look at."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        yield
    except PlaywrightTimeout as exc:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot))
        shown = page.locator("body").inner_text()[-3000:]
        raise AssertionError(f"{exc}\n--- the page showed ({screenshot}):\n{shown}") from exc
