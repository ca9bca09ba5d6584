"""The booking page in Chromium while its server restarts with the database down: its join
is refused with `error`, and it tries again, with growing pauses, until it is live."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import ROOT, Server, free_port, server_env, stop_servers
from tests.faults.conftest import BACKGROUND_LOOPS_OFF

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def start_on(port: int, site, folder) -> Server:
    """`python wsgi.py` on `port`, waited for until it answers at all (the database may be
    down, so /healthz may say 503)."""
    log = folder / f"server-{port}-{time.monotonic_ns()}.log"
    env = server_env(
        site.database_url, HOST="127.0.0.1", PORT=str(port), BASE_URL=f"http://127.0.0.1:{port}"
    )
    env.update(BACKGROUND_LOOPS_OFF)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "wsgi.py"], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    server = Server(port, process, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            server.request("GET", "/healthz", timeout=3)
            return server
        except OSError:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)


def live(page) -> str | None:
    return page.get_attribute("#booking", "data-live")


def test_a_page_whose_join_is_refused_tries_again_until_live(
    fault_site, postgres, servers, tmp_path, browser
):
    servers(fault_site)  # the site's hours and event type, on a server of its own
    port = free_port()
    server = start_on(port, fault_site, tmp_path)
    try:
        context = browser.new_context(base_url=server.url)
        try:
            page = context.new_page()
            page.goto("/coach/sync")
            page.wait_for_selector("#booking[data-live='true']", timeout=10_000)

            postgres.stop("fast")
            stop_servers([server])
            server = start_on(port, fault_site, tmp_path)
            # The socket comes back and joins; the server answers `error` (unavailable).
            deadline = time.monotonic() + 15
            while "socket handler: database unavailable" not in server.log.read_text():
                assert time.monotonic() < deadline, server.log.read_text()[-3000:]
                time.sleep(0.2)
            assert live(page) == "false"
            time.sleep(2.5)  # the page keeps trying: 1 s, then 2 s
            assert server.log.read_text().count("database unavailable") >= 2
            assert live(page) == "false"

            postgres.start()
            page.wait_for_selector("#booking[data-live='true']", timeout=15_000)
            assert page.locator(".slot[data-start]").count() > 0
        finally:
            context.close()
    finally:
        stop_servers([server])
    assert "Traceback" not in server.log.read_text()
