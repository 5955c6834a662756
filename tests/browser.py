"""Debian's headless Chromium driven by Playwright (test tools cannot download a browser here)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
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
    page.get_by_role("heading", name=heading).wait_for(timeout=timeout_ms)
    return page
