"""A real server process (`python wsgi.py`, eventlet) delivering webhooks from its own
worker: a receiver that trickles or answers slowly never freezes the server, the trickle
is given up on at the server's WEBHOOK_TIMEOUT_SECONDS, and the retry goes through."""

from __future__ import annotations

import threading
import time

import pytest

from tests.e2e.conftest import future_slot, launch_server, make_site, setup_coach, stop_servers
from tests.webhooks.receiver import Answer

# The server's WEBHOOK_TIMEOUT_SECONDS: the production 10 s would only make the test wait
# (test_delivery.py checks that 10 s is the default).
TIMEOUT = 5


@pytest.fixture
def server(tmp_path):
    site = make_site(f"sqlite:///{tmp_path / 'e2e.db'}")
    started = []
    # The receiver listens on 127.0.0.1; a retry comes a second after a failure; a delivery
    # is given up on after TIMEOUT.
    server = launch_server(
        tmp_path,
        site.database_url,
        started,
        ALLOW_PRIVATE_HOSTS="true",
        OUTBOX_RETRY_FIRST_SECONDS="1",
        WEBHOOK_TIMEOUT_SECONDS=str(TIMEOUT),
    )
    setup_coach(site, server)
    server.site = site
    yield server
    stop_servers(started)


class HealthWatch:
    """Polls /healthz in a thread; `.slowest` is the longest answer it waited for."""

    def __init__(self, server):
        self.server = server
        self.slowest = 0.0
        self.count = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, _ = self.server.request("GET", "/healthz", timeout=10)
                if status != 200:
                    self.failures.append(f"status {status}")
            except OSError as error:
                self.failures.append(repr(error))
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.count += 1
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def deliveries(server, webhook_id):
    status, body = server.request(
        "GET", f"/api/v1/webhooks/{webhook_id}/deliveries", headers=server.site.auth
    )
    assert status == 200, body
    return body["deliveries"]


def test_slow_receivers_never_freeze_the_server(server, receiver):
    site = server.site
    status, hook = server.request(
        "POST",
        "/api/v1/webhooks",
        {"url": receiver.url + "/hook", "events": ["booking.created"]},
        site.auth,
    )
    assert status == 201, hook
    # First a receiver that sends its answer a byte every half second (given up on at
    # TIMEOUT), then one that takes 2 s to answer: the retry.
    receiver.answer(Answer(200, b"ok", drip=0.5), Answer(200, b"ok", delay=2))
    with HealthWatch(server) as health:
        started = time.monotonic()
        status, booked = server.request(
            "POST",
            f"/api/v1/event-types/{site.event_type_id}/bookings",
            {"start": future_slot(), "name": "Ann Guest", "email": "ann@example.com"},
        )
        booking_took = time.monotonic() - started
        assert status == 201, booked
        first, second = receiver.wait_for(2, timeout=30)
        # The trickle was cut at TIMEOUT, then a retry.
        assert TIMEOUT - 1 <= second.at - first.at < TIMEOUT + 3
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            [delivery] = deliveries(server, hook["id"])
            if delivery["status"] == "sent":
                break
            time.sleep(0.2)
    assert booking_took < 2  # the booking never waits on its webhook
    assert delivery["status"] == "sent" and delivery["attempts"] == 2
    assert delivery["status_code"] == 200
    assert first.headers["X-ExpertBook-Delivery"] == second.headers["X-ExpertBook-Delivery"]
    assert first.body == second.body
    assert health.failures == [] and health.count > 50
    assert health.slowest < 1.0, f"/healthz waited {health.slowest:.2f} s"
