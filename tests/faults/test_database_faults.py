"""PostgreSQL stopped, restarting or frozen under a real server process (eventlet): requests
answer 503 `unavailable` with Retry-After within seconds, pages and sockets say so, and
everything works again, with no 500, once the database is back."""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import future_slot
from tests.faults.conftest import assert_no_traceback

pytestmark = pytest.mark.e2e


def timed(server, method: str, path: str, body=None, timeout: float = 30):
    """(status, body, seconds) of one request."""
    started = time.monotonic()
    status, answer = server.request(method, path, body, timeout=timeout)
    return status, answer, time.monotonic() - started


def retry_after(server, path: str) -> str | None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.getheader("Retry-After")
    finally:
        conn.close()


def booking(site, hour: int) -> tuple[str, dict]:
    path = f"/api/v1/event-types/{site.event_type_id}/bookings"
    return path, {"start": future_slot(days=3, hour=hour), "name": "Ann", "email": "a@ex.com"}


def slots_path(site) -> str:
    day = future_slot(days=3)[:10]
    return f"/api/v1/event-types/{site.event_type_id}/slots?from={day}&to={day}"


def assert_unavailable_everywhere(site, server) -> None:
    """The API, a page and /healthz all say 503; nothing is a 500."""
    status, body, _ = timed(server, "GET", slots_path(site))
    assert status == 503, body
    assert body["error"]["code"] == "unavailable", body
    path, payload = booking(site, 11)
    status, body, _ = timed(server, "POST", path, payload)
    assert status == 503 and body["error"]["code"] == "unavailable", body
    status, page, _ = timed(server, "GET", "/coach/sync")
    assert status == 503, page
    assert "Back in a moment" in page and "try again" in page
    assert timed(server, "GET", "/healthz")[0] == 503


def test_a_stopped_database_is_503_with_retry_after_and_the_server_recovers(
    fault_site, postgres, servers
):
    server = servers(fault_site)
    # Fill the pool with several connections, which the stop leaves dead.
    with ThreadPoolExecutor(8) as pool:
        warm = list(pool.map(lambda _: timed(server, "GET", slots_path(fault_site))[0], range(16)))
    assert set(warm) == {200}

    postgres.stop("fast")
    assert_unavailable_everywhere(fault_site, server)
    for path in (slots_path(fault_site), "/coach/sync"):
        assert retry_after(server, path) == "5"

    postgres.start()
    # Back at once, from the first request on: dead pooled connections are replaced, never
    # handed to a request.
    with ThreadPoolExecutor(8) as pool:
        after = list(pool.map(lambda _: timed(server, "GET", slots_path(fault_site))[0], range(16)))
    assert set(after) == {200}
    path, payload = booking(fault_site, 12)
    status, body, _ = timed(server, "POST", path, payload)
    assert status == 201, body
    assert_no_traceback(server)


def test_a_restart_between_requests_costs_no_request_a_500(fault_site, postgres, servers):
    server = servers(fault_site)
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: timed(server, "GET", "/coach/sync")[0], range(16))) == {200}
    postgres.restart("fast")
    statuses = [timed(server, "GET", path)[0] for path in ("/coach/sync", slots_path(fault_site))]
    path, payload = booking(fault_site, 13)
    statuses.append(timed(server, "POST", path, payload)[0])
    assert statuses == [200, 200, 201]
    assert_no_traceback(server)


def test_a_frozen_database_is_503_within_seconds_and_healthz_within_two(
    fault_site, postgres, servers
):
    server = servers(fault_site, DATABASE_CONNECT_TIMEOUT="2")
    assert timed(server, "GET", slots_path(fault_site))[0] == 200
    with postgres.frozen():
        status, _, seconds = timed(server, "GET", "/healthz", timeout=20)
        assert (status, seconds < 2) == (503, True), seconds
        # Meanwhile the process serves what needs no database (the hub is not blocked).
        status, _, seconds = timed(server, "GET", "/static/js/booking.js", timeout=20)
        assert status == 200 and seconds < 0.5, seconds
        status, body, seconds = timed(server, "GET", slots_path(fault_site), timeout=20)
        assert status == 503 and body["error"]["code"] == "unavailable", body
        assert seconds < 5, seconds
        path, payload = booking(fault_site, 14)
        status, body, seconds = timed(server, "POST", path, payload, timeout=20)
        assert status == 503 and body["error"]["code"] == "unavailable", body
        assert seconds < 5, seconds
    # Thawed: the connections that timed out were dropped, new ones work.
    assert timed(server, "GET", "/healthz")[0] == 200
    assert timed(server, "GET", slots_path(fault_site))[0] == 200
    status, body, _ = timed(server, "POST", path, payload)
    assert status == 201, body
    assert_no_traceback(server)


def test_a_page_joining_while_the_database_is_down_hears_error_then_joins(
    fault_site, postgres, servers, listeners
):
    server = servers(fault_site)
    page = listeners(server)
    postgres.stop("fast")
    event, data = page.join(fault_site.event_type_id, within=10)
    assert event == "error" and data["code"] == "unavailable", (event, data)
    assert data["retry_after"] > 0
    postgres.start()
    event, data = page.join(fault_site.event_type_id, within=10)
    assert event == "joined" and data["event_type_id"] == fault_site.event_type_id, data
    assert isinstance(data["version"], int)
    assert_no_traceback(server)
