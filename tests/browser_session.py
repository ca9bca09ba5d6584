"""One Chromium for the whole test session (Debian's, driven by Playwright's sync API).

A plugin rather than a folder's conftest: Playwright's sync API allows one instance per
thread, so every folder whose tests drive a page (tests/browser, tests/faults) shares it."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import unavailable

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
