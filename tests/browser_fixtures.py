"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, and a real server.

Load with ``pytest_plugins = ["browser_fixtures"]`` in a test module. Nothing here
downloads a browser: Playwright drives ``/usr/bin/chromium`` (Debian package ``chromium``).
Without it the tests skip on a workstation and FAIL in CI (``CI=true``), so a CI image
that lost Chromium cannot pass silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("SEGMAP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run here)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """One headless Chromium for the whole session (pages get fresh contexts)."""
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} not found: install the Debian package 'chromium'")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def browser_context(chromium_browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies) that accepts downloads."""
    context = chromium_browser.new_context(
        accept_downloads=True, viewport={"width": 1280, "height": 860}
    )
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture()
def page(browser_context: Any) -> Any:
    """A tab in a fresh profile; JavaScript errors on the page fail the test."""
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    assert not errors, f"JavaScript errors on the page: {errors}"
