"""A real server process and Debian's Chromium driven by Playwright.

Every page may talk to the app's own origin only: a request to any other host fails the
test, and so does a console error (a Content-Security-Policy violation shows up as one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Server, _wait_until_up, free_port, make_site, server_env

# The README's screenshots are refreshed with UPDATE_SCREENSHOTS=1 make test; otherwise the
# pages are still photographed (the code path runs) but into a scratch folder, so a test
# run leaves the work tree clean.
SCREENSHOTS = ROOT / "docs" / "screenshots"
SCRATCH = Path(tempfile.gettempdir()) / "expertbook-screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 780}


@pytest.fixture(scope="session")
def live_inbox():
    """A real SMTP server (aiosmtpd) that the live server sends every mail to."""
    from tests.mail_inbox import smtp_server

    with smtp_server() as inbox:
        yield inbox


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, live_inbox) -> Iterator[Server]:
    """One `python wsgi.py` (eventlet) on a fresh SQLite database for the browser tests."""
    folder = tmp_path_factory.mktemp("browser")
    site = make_site(f"sqlite:///{folder / 'browser.db'}")
    port = free_port()
    log = folder / "server.log"
    env = server_env(
        site.database_url,
        HOST="127.0.0.1",
        PORT=str(port),
        BASE_URL=f"http://127.0.0.1:{port}",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(live_inbox.port),
    )
    env["ALLOW_PRIVATE_HOSTS"] = "true"  # the calendar tests connect a Radicale on 127.0.0.1
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "wsgi.py"], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    server = Server(port, process, log)
    server.site = site
    server.inbox = live_inbox
    _wait_until_up(server)
    yield server
    process.terminate()
    process.wait(timeout=10)


class Guard:
    """Collects requests to other hosts and console errors of every page in a context."""

    def __init__(self, origin: str):
        self.origin = origin
        self.foreign: list[str] = []
        self.console_errors: list[str] = []
        # Substrings of console errors a test expects (e.g. while it takes the network away).
        self.expected_errors: tuple[str, ...] = ()

    def route(self, route):
        url = route.request.url
        if url.startswith((self.origin + "/", "data:", "blob:")) or url == self.origin:
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def watch(self, page):
        page.on(
            "console",
            lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None,
        )
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))

    def check(self):
        assert not self.foreign, f"requests to other hosts: {self.foreign}"
        unexpected = [
            text
            for text in self.console_errors
            if not any(part in text for part in self.expected_errors)
        ]
        assert not unexpected, f"console errors: {unexpected}"


@pytest.fixture
def new_context(browser, live_server):
    """Factory: new_context(viewport=PHONE) -> a guarded browser context on the live server."""
    made = []

    def make(viewport=DESKTOP, **options):
        context = browser.new_context(
            base_url=live_server.url, viewport=viewport, accept_downloads=True, **options
        )
        guard = Guard(live_server.url)
        context.route("**/*", guard.route)
        context.on("page", guard.watch)
        context.guard = guard
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()
    for context in made:
        context.guard.check()


def screenshot(page, name: str) -> None:
    """Save <name>.png: into docs/screenshots/ (the README shows them) when asked to."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else SCRATCH
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def shots(page, name: str) -> None:
    """Desktop and 375-px screenshots of the current page."""
    viewport = page.viewport_size
    page.set_viewport_size(DESKTOP)
    screenshot(page, f"{name}-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, f"{name}-mobile")
    page.set_viewport_size(viewport)


def assert_accessible(page, label: str = "") -> None:
    """axe-core (bundled by axe-playwright-python, no network) finds nothing serious or
    critical on the page as it is now; colour contrast is checked to WCAG AA."""
    from axe_playwright_python.sync_playwright import Axe

    # A toast fading in is half transparent for a moment, and axe would judge its contrast
    # mid-animation: let every animation that ends (not a spinner) end first.
    page.evaluate(
        """() => Promise.all(document.getAnimations()
            .filter((a) => a.effect && a.effect.getTiming().iterations !== Infinity)
            .map((a) => a.finished.catch(() => null)))"""
    )
    options = {
        "resultTypes": ["violations"],
        "runOnly": ["wcag2a", "wcag2aa", "wcag21aa", "best-practice"],
    }
    results = Axe().run(page, options=options)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']}: "
        + "; ".join(
            node["target"][0] if isinstance(node["target"][0], str) else str(node["target"])
            for node in v["nodes"][:4]
        )
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{label or page.url}: " + "\n".join(bad)
