"""No double booking, ever: 100 clients fire at one slot through real server processes."""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
import socketio
import sqlalchemy as sa

from config import normalize_database_url
from tests.e2e.conftest import future_slot, setup_coach

pytestmark = pytest.mark.e2e
CLIENTS = 100


def fire_at_once(servers, path: str, body: dict, n: int = CLIENTS) -> Counter:
    """n connections, opened first, then one POST each released by a barrier."""
    barrier = threading.Barrier(n)

    def one(i: int) -> int:
        server = servers[i % len(servers)]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.connect()
        barrier.wait()
        payload = {**body, "email": f"client{i}@example.com"}
        conn.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
        status = conn.getresponse().status
        conn.close()
        return status

    with ThreadPoolExecutor(n) as pool:
        return Counter(pool.map(one, range(n)))


class Listener:
    """A Socket.IO client in one event type's room, recording slot_taken events."""

    def __init__(self, server, event_type_id: int):
        self.events: list[dict] = []
        self.joined = threading.Event()
        self.heard = threading.Event()
        self.client = socketio.Client(reconnection=False)
        self.client.on("joined", lambda data: self.joined.set())
        self.client.on("slot_taken", self._on_taken)
        self.client.connect(server.url, transports=["websocket"], wait_timeout=10)
        self.client.emit("join", {"event_type_id": event_type_id})
        assert self.joined.wait(10), "join was not acknowledged"

    def _on_taken(self, data):
        self.events.append(data)
        self.heard.set()

    def close(self):
        self.client.disconnect()


def booking_rows(database_url: str) -> int:
    engine = sa.create_engine(normalize_database_url(database_url))
    with engine.connect() as conn:
        count = conn.scalar(sa.text("SELECT count(*) FROM booking WHERE status = 'confirmed'"))
    engine.dispose()
    return count


def race(site, servers):
    event_type_id = setup_coach(site, servers[0])
    listeners = [Listener(server, event_type_id) for server in servers for _ in range(2)]
    start = future_slot()
    try:
        statuses = fire_at_once(
            servers,
            f"/api/v1/event-types/{event_type_id}/bookings",
            {"start": start, "name": "Racer"},
        )
        assert statuses == Counter({201: 1, 409: CLIENTS - 1})
        assert booking_rows(site.database_url) == 1
        for listener in listeners:
            assert listener.heard.wait(5), "a socket did not hear slot_taken"
            assert listener.events == [
                {"event_type_id": event_type_id, "start": start, "end": listener.events[0]["end"]}
            ]
    finally:
        for listener in listeners:
            listener.close()


def test_race_on_postgresql_two_processes_with_redis(pg_site, start_server, redis_url):
    servers = start_server.many(2, pg_site.database_url, REDIS_URL=redis_url)
    race(pg_site, servers)


def test_race_on_sqlite_one_process(sqlite_site, start_server):
    race(sqlite_site, [start_server(sqlite_site.database_url)])


def _book_in_background(server, event_type_id: int, results: list) -> threading.Thread:
    def book():
        results.append(
            server.request(
                "POST",
                f"/api/v1/event-types/{event_type_id}/bookings",
                {"start": future_slot(hour=11), "name": "Waiter", "email": "w@example.com"},
            )
        )

    thread = threading.Thread(target=book)
    thread.start()
    return thread


def assert_process_stays_responsive(server) -> None:
    """While a booking waits on a lock, the same process must keep serving."""
    time.sleep(0.5)  # let the booking reach the lock
    for _ in range(3):
        began = time.monotonic()
        assert server.request("GET", "/healthz", timeout=10)[0] == 200
        assert time.monotonic() - began < 1.0, "the server froze while a booking waited"


def test_waiting_on_a_row_lock_does_not_freeze_the_process(pg_site, start_server):
    server = start_server(pg_site.database_url)
    event_type_id = setup_coach(pg_site, server)
    libpq_url = sa.make_url(pg_site.database_url).set(drivername="postgresql")
    holder = psycopg2.connect(libpq_url.render_as_string(hide_password=False))
    results: list = []
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT id FROM \"user\" WHERE username = 'coach' FOR UPDATE")
        thread = _book_in_background(server, event_type_id, results)
        assert_process_stays_responsive(server)
        assert not results, "the booking did not wait for the lock"
    finally:
        holder.rollback()
        holder.close()
    thread.join(10)
    assert results and results[0][0] == 201


def test_waiting_on_the_sqlite_write_lock_does_not_freeze_the_process(sqlite_site, start_server):
    server = start_server(sqlite_site.database_url)
    event_type_id = setup_coach(sqlite_site, server)
    path = sqlite_site.database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    results: list = []
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        thread = _book_in_background(server, event_type_id, results)
        assert_process_stays_responsive(server)
        assert not results, "the booking did not wait for the lock"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    thread.join(10)
    assert results and results[0][0] == 201
