"""pubsub.Publisher against a redis-server of the test's own: messages go out in order
without the caller waiting for Redis's answer; those whose answer never comes (Redis frozen)
are noted for a catch-up; after a restart the next message goes through."""

from __future__ import annotations

import contextlib
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


# What a test opened (managers, subscriptions, clients), closed after it.
_opened: list = []


@pytest.fixture(autouse=True)
def close_what_was_opened():
    yield
    while _opened:
        with contextlib.suppress(Exception):
            _opened.pop()()


def make_manager(url: str) -> RecoveringRedisManager:
    manager = RecoveringRedisManager(
        url, channel=CHANNEL, catch_up=lambda room: ("slots_changed", {"room": room})
    )
    manager.server = Tasks()

    def close() -> None:
        with manager._publisher._lock:
            manager._publisher._drop()
        if manager.redis is not None:
            manager.redis.close()

    _opened.append(close)
    return manager


def client(url: str) -> redis_py.Redis:
    opened = redis_py.Redis.from_url(url)
    _opened.append(opened.close)
    return opened


def message(i: int, room: str = "event-type:1") -> dict:
    return {"method": "emit", "event": "slot_taken", "data": [{"i": i}], "namespace": "/",
            "room": room, "skip_sid": None, "callback": None, "host_id": "test"}  # fmt: skip


def subscribe(url: str):
    pubsub = client(url).pubsub(ignore_subscribe_messages=True)
    _opened.append(pubsub.close)
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


def heard_event(pubsub, event: str, room: str, timeout: float = 8) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in heard(pubsub, 1, timeout=0.2):
            if m["event"] == event and m["room"] == room:
                return True
    return False


def test_a_frozen_redis_does_not_hold_the_callers_and_their_rooms_catch_up(redis):
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
        # The connection is gone; nobody waits for a new one either (it is made by a task
        # of its own, which cannot get through a frozen Redis).
        took: list[float] = []

        def publish(i: int) -> None:
            began = time.monotonic()
            manager._publish(message(i, room="event-type:3"))
            took.append(time.monotonic() - began)

        threads = [threading.Thread(target=publish, args=(i,)) for i in range(2, 8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert max(took) < TIMEOUT / 2, took
        wait_until(lambda: ("/", "event-type:3") in manager._missed or manager._catching_up, 3)
    # Redis answers again: both rooms are told to re-read.
    assert heard_event(listener, "slots_changed", "event-type:2")
    wait_until(lambda: not manager._failing, 8)


def test_redis_down_at_start_costs_the_caller_nothing_and_is_used_once_up(redis):
    redis.stop()
    manager = make_manager(redis.url)
    started = time.monotonic()
    manager._publish(message(0))
    assert time.monotonic() - started < TIMEOUT / 2
    wait_until(lambda: manager._failing, 3)
    redis.start()
    listener = subscribe(redis.url)
    # The next try comes after a pause (RETRY_FIRST, doubling while Redis stays away).
    deadline = time.monotonic() + 10
    got: list[dict] = []
    i = 1
    while not got:
        assert time.monotonic() < deadline, "never published again"
        manager._publish(message(i))
        got = [m for m in heard(listener, 1, timeout=0.3) if m["event"] == "slot_taken"]
        i += 1
    wait_until(lambda: not manager._failing, 8)


def test_connections_made_again_and_again_never_run_out(redis):
    """Each reconnection makes a connection outside the client's pool, whose count of
    connections made is capped (100 in redis-py): the 150th still goes through."""
    manager = make_manager(redis.url)
    listener = subscribe(redis.url)
    publisher = manager._publisher
    for i in range(150):
        with publisher._lock:
            publisher._drop()
        manager._publish(message(i))
        wait_until(lambda: publisher._connection is not None and not publisher._pending, 5)
    assert [m["data"][0]["i"] for m in heard(listener, 150)][-1] == 149
    assert not manager._failing and not manager._missed


def test_a_refused_message_is_lost_alone_and_the_connection_kept(redis):
    manager = make_manager(redis.url)
    listener = subscribe(redis.url)
    manager._publish(message(0))
    assert len(heard(listener, 1)) == 1
    connection = manager._publisher._connection
    admin = client(redis.url)
    admin.execute_command("ACL", "SETUSER", "default", "-publish")
    try:
        manager._publish(message(1, room="event-type:9"))
        wait_until(lambda: ("/", "event-type:9") in manager._missed or manager._catching_up, 3)
    finally:
        admin.execute_command("ACL", "SETUSER", "default", "+publish")
    manager._publish(message(2))
    assert any(m["data"] == [{"i": 2}] for m in heard(listener, 3, timeout=3))
    assert manager._publisher._connection is connection


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
    admin = client(redis.url)
    before = len(admin.client_list())
    manager._publisher.warm_up()
    assert len(admin.client_list()) == before + 1
    listener = subscribe(redis.url)
    manager._publish(message(0))
    assert [m["data"][0]["i"] for m in heard(listener, 1)] == [0]
