"""Redis stopped, restarted or frozen under real server processes (eventlet): bookings go on
with per-process rate limits, and live updates lost meanwhile are made up for once Redis is
back (open pages are told to re-read their slots)."""

from __future__ import annotations

import time

import pytest
import redis as redis_py

from tests.e2e.conftest import future_slot
from tests.faults.conftest import assert_no_traceback

pytestmark = pytest.mark.e2e

DAYS = 4  # from now, the day this module books on
FALLBACK_LINE = "falling back to in-memory storage"


def book(site, server, hour: int, minute: int = 0, timeout: float = 30):
    """(status, body, seconds) of a booking POST at `hour`:`minute`, DAYS from now."""
    start = future_slot(days=DAYS, hour=hour).replace(":00:00Z", f":{minute:02d}:00Z")
    started = time.monotonic()
    status, body = server.request(
        "POST",
        f"/api/v1/event-types/{site.event_type_id}/bookings",
        {"start": start, "name": "Ann", "email": "ann@example.com"},
        timeout=timeout,
    )
    return status, body, time.monotonic() - started


def limit_keys(redis) -> list[bytes]:
    client = redis_py.Redis.from_url(redis.url, socket_timeout=2)
    try:
        return client.keys("LIMITS*")
    finally:
        client.close()


def test_bookings_go_on_while_redis_is_away_with_limits_kept_in_memory(fault_site, redis, servers):
    server = servers(fault_site, REDIS_URL=redis.url, RATELIMIT_ENABLED="true")
    assert book(fault_site, server, 8)[0] == 201
    assert limit_keys(redis), "the limits are counted in Redis while it is up"

    redis.stop()
    status, body, seconds = book(fault_site, server, 9)
    assert status == 201 and seconds < 3, (status, body, seconds)
    # Still limited, per process: at most 60 booking POSTs a minute from one address.
    statuses = [book(fault_site, server, 23, 59)[0] for _ in range(61)]
    assert statuses[-1] == 429 and 500 not in statuses, statuses
    assert server.log.read_text().count(FALLBACK_LINE) == 1, "one warning per outage"

    redis.start()
    # Redis is looked at again after 1, 2, 4, 8 ... s: the limits go back to it by themselves
    # (a booking POST then counts there, and the in-memory 429 is gone).
    deadline = time.monotonic() + 30
    while book(fault_site, server, 23, 59)[0] == 429:
        assert time.monotonic() < deadline, "the limits never went back to Redis"
        time.sleep(0.5)
    assert limit_keys(redis)
    assert book(fault_site, server, 10)[0] == 201
    assert_no_traceback(server)


def test_a_frozen_redis_costs_a_booking_about_a_second(fault_site, redis, servers, listeners):
    server = servers(fault_site, REDIS_URL=redis.url, RATELIMIT_ENABLED="true")
    page = listeners(server, fault_site.event_type_id)
    with redis.frozen():
        status, body, seconds = book(fault_site, server, 11)
        assert status == 201 and seconds < 4, (status, body, seconds)
        # This process's own pages hear it at once, Redis or not.
        page.wait_for("slot_taken", 2)
    assert book(fault_site, server, 12)[0] == 201
    assert_no_traceback(server)


def test_a_frozen_redis_costs_a_booking_nothing_with_limits_off(
    fault_site, redis, servers, listeners
):
    """Publishing never waits for Redis's answer (pubsub.Publisher): without the rate
    limits, whose store is Redis, a booking answers at its usual speed while Redis is
    frozen (it waited for the publish's timeout, twice, before)."""
    server = servers(fault_site, REDIS_URL=redis.url, RATELIMIT_ENABLED="false")
    page = listeners(server, fault_site.event_type_id)
    assert book(fault_site, server, 13)[0] == 201
    with redis.frozen():
        status, body, seconds = book(fault_site, server, 14)
        assert status == 201 and seconds < 0.6, (status, body, seconds)
        page.wait_for("slot_taken", 2)
    assert book(fault_site, server, 13, 30)[0] == 201
    assert_no_traceback(server)


def test_pages_re_read_when_their_process_gets_back_on_the_channel(
    fault_site, redis, servers, listeners
):
    """Redis restarted: what others published meanwhile is lost to this process's listener,
    so when it is back on the channel its pages are told to re-read."""
    server = servers(fault_site, REDIS_URL=redis.url)
    page = listeners(server, fault_site.event_type_id)
    heard = len(page.events)
    redis.restart()
    started = time.monotonic()
    event, data = page.wait_for("slots_changed", 10, since=heard)
    assert data == {"event_type_id": fault_site.event_type_id}
    assert time.monotonic() - started < 5
    assert_no_traceback(server)


def test_an_event_lost_in_a_redis_freeze_reaches_other_processes_as_slots_changed(
    fault_site, redis, servers, listeners
):
    """Redis frozen: no listener notices (its connection stays open), but the process that
    could not publish catches the rooms up once Redis answers again."""
    first, second = servers.many(2, fault_site, REDIS_URL=redis.url)
    page = listeners(second, fault_site.event_type_id)
    assert book(fault_site, first, 15)[0] == 201
    page.wait_for("slot_taken", 5)  # through Redis, from the other process
    heard = len(page.events)
    with redis.frozen():
        status, body, _ = book(fault_site, first, 16)
        assert status == 201, body
        time.sleep(1)
    event, data = page.wait_for("slots_changed", 5, since=heard)
    assert data == {"event_type_id": fault_site.event_type_id}
    # And live updates flow again.
    heard = len(page.events)
    assert book(fault_site, first, 17)[0] == 201
    event, data = page.wait_for("slot_taken", 5, since=heard)
    assert data["start"] == future_slot(days=DAYS, hour=17)
    assert_no_traceback(first, second)
