"""pubsub.Publisher against a redis-server of the test's own: messages go out in order
without the caller waiting for Redis's answer; those whose answer never comes (Redis frozen)
are noted for a catch-up; after a restart the next message goes through."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis as redis_py

from expertbook.pubsub import TIMEOUT, RecoveringRedisManager

pytestmark = pytest.mark.e2e

CHANNEL = "expertbook-publisher-test"


class Tasks:
    """What the manager asks of its Socket.IO server: background tasks (threads here)."""

    def start_background_task(self, target, *args, **kwargs):
        thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        return thread


def make_manager(url: str) -> RecoveringRedisManager:
    manager = RecoveringRedisManager(
        url, channel=CHANNEL, catch_up=lambda room: ("slots_changed", {"room": room})
    )
    manager.server = Tasks()
    return manager


def message(i: int, room: str = "event-type:1") -> dict:
    return {"method": "emit", "event": "slot_taken", "data": [{"i": i}], "namespace": "/",
            "room": room, "skip_sid": None, "callback": None, "host_id": "test"}  # fmt: skip


def subscribe(url: str):
    pubsub = redis_py.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    pubsub.get_message(timeout=1)  # the subscription's confirmation
    return pubsub


def heard(pubsub, count: int, timeout: float = 5) -> list[dict]:
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        item = pubsub.get_message(timeout=0.1)
        if item is not None:
            got.append(json.loads(item["data"]))
    return got


def wait_until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)


def test_messages_go_out_in_order_and_are_answered(redis):
    manager = make_manager(redis.url)
    listener = subscribe(redis.url)
    for i in range(300):
        manager._publish(message(i))
    assert [m["data"][0]["i"] for m in heard(listener, 300)] == list(range(300))
    wait_until(lambda: not manager._publisher._pending, 5)  # every answer read
    assert not manager._failing and not manager._missed


def test_a_frozen_redis_does_not_hold_the_caller_and_its_rooms_catch_up(redis):
    manager = make_manager(redis.url)
    listener = subscribe(redis.url)
    manager._publish(message(0))
    assert len(heard(listener, 1)) == 1
    with redis.frozen():
        started = time.monotonic()
        manager._publish(message(1, room="event-type:2"))
        assert time.monotonic() - started < TIMEOUT / 2
        # Its answer never comes: the room is noted for a catch-up.
        wait_until(lambda: manager._failing, 3 * TIMEOUT)
    # Redis answers again: the room is told to re-read.
    events = heard(listener, 3, timeout=8)
    assert any(m["event"] == "slots_changed" and m["room"] == "event-type:2" for m in events), (
        events
    )
    wait_until(lambda: not manager._failing, 5)


def test_after_a_restart_the_next_message_goes_through(redis):
    """The connection Redis closed is noticed before writing on it: the message is not
    lost (which would make its room re-read instead)."""
    manager = make_manager(redis.url)
    manager._publish(message(0))
    wait_until(lambda: not manager._publisher._pending, 5)
    redis.restart()
    listener = subscribe(redis.url)
    manager._publish(message(1))
    assert [m["data"][0]["i"] for m in heard(listener, 1)] == [1]
    assert not manager._failing and not manager._missed


def test_warm_up_connects_before_the_first_message(redis):
    """wsgi.py's warm-up: a fresh process's first booking does not pay the connection."""
    manager = make_manager(redis.url)
    client = redis_py.Redis.from_url(redis.url)
    before = len(client.client_list())
    manager._publisher.warm_up()
    assert len(client.client_list()) == before + 1
    listener = subscribe(redis.url)
    manager._publish(message(0))
    assert [m["data"][0]["i"] for m in heard(listener, 1)] == [0]
