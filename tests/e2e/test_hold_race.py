"""Live holds across real server processes (PostgreSQL + Redis): 50 clients hold and book
one slot at once, and a holder whose socket dies frees the time, live, once the disconnect
grace has passed (that run, on a database and servers of its own, waits while the other
test runs)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import socketio
import sqlalchemy as sa

from config import normalize_database_url
from tests.conftest import pg_database_url
from tests.e2e.conftest import (
    ROOT,
    future_slot,
    launch_server,
    make_site,
    server_env,
    setup_coach,
    stop_servers,
)

pytestmark = pytest.mark.e2e
CLIENTS = 50
# The killed holder's servers' HOLD_DISCONNECT_GRACE_SECONDS: the production 30 s would make
# the run wait half a minute; tests/holds/test_realtime.py checks that 30 s is the default.
GRACE = 6
CHANNEL = server_env("")["SOCKETIO_CHANNEL"]  # the run's own, as every server here has


def post(server, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request(
            "POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


class Listener:
    """A booking page's socket in the event type's room, recording what it hears."""

    def __init__(self, server, event_type_id: int):
        self.events: list[tuple[str, dict, float]] = []
        self.changed = threading.Condition()
        joined = threading.Event()
        self.client = socketio.Client(reconnection=False)
        self.client.on("joined", lambda data: joined.set())
        for name in ("slot_held", "slot_released", "slot_taken"):
            self.client.on(name, self._recorder(name))
        self.client.connect(server.url, transports=["websocket"], wait_timeout=10)
        self.client.emit("join", {"event_type_id": event_type_id})
        assert joined.wait(10), "join was not acknowledged"

    def _recorder(self, name: str):
        def record(data):
            with self.changed:
                self.events.append((name, data, time.monotonic()))
                self.changed.notify_all()

        return record

    def wait_for(self, name: str, timeout: float) -> float | None:
        """When `name` was first heard, waiting up to `timeout` seconds for it."""
        with self.changed:
            self.changed.wait_for(lambda: any(e[0] == name for e in self.events), timeout)
            return next((at for e, _, at in self.events if e == name), None)

    def names(self) -> list[str]:
        return [name for name, _, _ in self.events]

    def close(self):
        self.client.disconnect()


def scalar(database_url: str, sql: str):
    engine = sa.create_engine(normalize_database_url(database_url))
    with engine.connect() as conn:
        value = conn.scalar(sa.text(sql))
    engine.dispose()
    return value


def hold_then_book(servers, event_type_id: int, start: str) -> list[tuple[int, str, int, str]]:
    """Each client, released together: hold `start`, then book it (with the hold's token
    when it got the hold). (hold status, hold code, booking status, booking code) each."""
    barrier = threading.Barrier(CLIENTS)

    def one(i: int):
        server = servers[i % len(servers)]
        barrier.wait()
        status, body = post(server, f"/api/v1/event-types/{event_type_id}/holds", {"start": start})
        headers = {"X-Hold-Token": body["hold_token"]} if status == 201 else {}
        hold_code = body.get("error", {}).get("code", "")
        booking = {"start": start, "name": "Racer", "email": f"client{i}@example.com"}
        booked, answer = post(
            server, f"/api/v1/event-types/{event_type_id}/bookings", booking, headers
        )
        return status, hold_code, booked, answer.get("error", {}).get("code", "")

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS)))


def test_fifty_clients_hold_and_book_one_slot(pg_site, start_server, redis_url):
    servers = start_server.many(2, pg_site.database_url, REDIS_URL=redis_url)
    event_type_id = setup_coach(pg_site, servers[0])
    listeners = [Listener(server, event_type_id) for server in servers]
    start = future_slot()
    try:
        results = hold_then_book(servers, event_type_id, start)
        holds = Counter(status for status, _, _, _ in results)
        bookings = Counter(status for _, _, status, _ in results)
        assert holds == Counter({201: 1, 409: CLIENTS - 1}), results
        assert bookings == Counter({201: 1, 409: CLIENTS - 1}), results
        # The one who got the hold is the one who booked.
        assert [r for r in results if r[0] == 201][0][2] == 201
        # Everybody else was told why: somebody holds it, or it is taken.
        for hold_status, hold_code, book_status, book_code in results:
            if hold_status == 409:
                assert hold_code in ("slot_held", "slot_unavailable"), results
            if book_status == 409:
                assert book_code in ("slot_held", "slot_unavailable"), results
        assert scalar(pg_site.database_url, "SELECT count(*) FROM booking") == 1
        assert scalar(pg_site.database_url, "SELECT count(*) FROM slot_hold") == 0
        for listener in listeners:
            assert listener.wait_for("slot_taken", 10), listener.events
            names = listener.names()
            assert names.count("slot_held") == 1 and names.count("slot_taken") == 1, names
            assert names.index("slot_held") < names.index("slot_taken")
            assert "slot_released" not in names  # the booking supersedes the hold
    finally:
        for listener in listeners:
            listener.close()


HOLDER = """
import sys, time, socketio
url, hold_id, token = sys.argv[1:4]
client = socketio.Client(reconnection=False)
client.on("held", lambda data: print("held", flush=True))
client.connect(url, transports=["websocket"], wait_timeout=10)
client.emit("hold", {"hold_id": hold_id, "hold_token": token})
time.sleep(600)
"""


class KilledHolder:
    """The killed-holder run, in a thread of its own: a holder's process holds a slot on one
    server and is killed (its socket closes without a goodbye); a page on the other server
    waits (up to GRACE + 10 s) to hear slot_released. The run starts with the module, so its long
    wait goes on while the module's other tests run; its test checks what it saw."""

    def __init__(self, tmp_path, redis_url: str):
        self.tmp_path, self.redis_url = tmp_path, redis_url
        self.started: list = []
        self.watcher: Listener | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._scenario()
        except BaseException as error:  # noqa: BLE001  (re-raised by the test)
            self.error = error

    def _scenario(self) -> None:
        self.site = site = make_site(pg_database_url("expertbook_e2e_killed_holder"))
        # A pub/sub channel of its own: the other test's servers, on another database
        # whose event type has the same id, must not hear this run's events (nor it theirs).
        env = {
            "REDIS_URL": self.redis_url,
            "SOCKETIO_CHANNEL": f"{CHANNEL}-killed-holder",
            "HOLD_DISCONNECT_GRACE_SECONDS": str(GRACE),
        }
        with ThreadPoolExecutor(2) as pool:  # the two servers start side by side
            launches = [
                pool.submit(launch_server, self.tmp_path, site.database_url, self.started, **env)
                for _ in range(2)
            ]
        servers = self.servers = [launch.result() for launch in launches]
        self.event_type_id = setup_coach(site, servers[0])
        self.watcher = watcher = Listener(servers[1], self.event_type_id)
        self.start = start = future_slot()
        status, body = post(
            servers[0], f"/api/v1/event-types/{self.event_type_id}/holds", {"start": start}
        )
        assert status == 201, body
        self.hold = body
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, servers[0].url, body["hold_id"], body["hold_token"]],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            assert watcher.wait_for("slot_held", 10)
            self.killed = time.monotonic()
            holder.kill()
            holder.wait(10)
            self.freed = watcher.wait_for("slot_released", GRACE + 10)
        finally:
            holder.kill()
            holder.wait(10)
            holder.stdout.close()

    def close(self) -> None:
        self.thread.join(120)
        if self.watcher is not None:
            self.watcher.close()
        stop_servers(self.started)


@pytest.fixture(scope="module", autouse=True)
def killed_holder(tmp_path_factory, redis_url):
    """Started before the module's first test, checked by its own test below."""
    run = KilledHolder(tmp_path_factory.mktemp("killed-holder"), redis_url)
    run.thread.start()
    yield run
    run.close()


def test_a_killed_holders_time_frees_after_the_grace_live(killed_holder):
    """The servers' grace (GRACE) and the real sweeper: the holder's process is killed (its
    socket closes without a goodbye); a page on the other server hears slot_released no
    sooner than the grace and within 5 s after it (as 25-35 s with the default 30 s)."""
    run = killed_holder
    run.thread.join(120)
    assert not run.thread.is_alive(), "the killed-holder run did not end within 120 s"
    if run.error is not None:
        raise run.error
    freed, killed = run.freed, run.killed
    assert freed is not None, "the hold was not released"
    assert GRACE - 1 < freed - killed <= GRACE + 5, freed - killed
    assert run.watcher.events[-1][1] == {
        "event_type_id": run.event_type_id,
        "start": run.start,
        "end": run.hold["end"],
    }
    assert scalar(run.site.database_url, "SELECT count(*) FROM slot_hold") == 0
    # Free for anybody now.
    status, _ = post(
        run.servers[1], f"/api/v1/event-types/{run.event_type_id}/holds", {"start": run.start}
    )
    assert status == 201
