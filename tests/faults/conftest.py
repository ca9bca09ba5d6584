"""Fixtures for fault tests: a PostgreSQL and Redis of the tests' own (tests/faults/services.py)
to stop, freeze and restart, real server processes on them, and Socket.IO listeners.

The machine's shared PostgreSQL and Redis are never touched. One PostgreSQL serves the whole
run (initdb is slow); a test that stops or freezes it has it running again when it ends,
whether it passed or not.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import socketio

from tests.conftest import unavailable
from tests.e2e.conftest import Server, Site, launch_server, make_site, setup_coach, stop_servers
from tests.faults.services import PostgresInstance, RedisInstance


def _need(*programs: str) -> None:
    missing = [name for name in programs if shutil.which(name) is None]
    if missing:
        unavailable(f"fault tests need {', '.join(missing)} on PATH")


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PostgresInstance]:
    """A PostgreSQL cluster of this run's own, on a free port."""
    _need("initdb", "pg_ctl")
    instance = PostgresInstance()
    try:
        instance.start()
        yield instance
    finally:
        instance.close()


@pytest.fixture
def postgres(private_postgres) -> Iterator[PostgresInstance]:
    """The run's PostgreSQL, thawed and running again after the test, whatever it did."""
    yield private_postgres
    private_postgres.thaw()
    if private_postgres.pid() is None:
        private_postgres.start()


@pytest.fixture
def redis() -> Iterator[RedisInstance]:
    """A redis-server of the test's own, on a free port, removed after."""
    _need("redis-server")
    instance = RedisInstance()
    try:
        instance.start()
        yield instance
    finally:
        instance.close()


@pytest.fixture(scope="session")
def fault_site(private_postgres) -> Site:
    """A migrated database on the private PostgreSQL with the coach of tests/e2e
    (round-the-clock hours in UTC, a 30-minute event type). One for the run: each module
    books on a day of its own."""
    return make_site(private_postgres.create_database("faults"))


# The delivery and calendar loops log their own failures while the database is away, with
# tracebacks (their handling of an outage is tested with them); here their log would mix
# with the requests', which must have none.
BACKGROUND_LOOPS_OFF = {"WORKER_IN_PROCESS": "false", "CALENDAR_SYNC_IN_PROCESS": "false"}


@pytest.fixture
def servers(tmp_path) -> Iterator[Callable[..., Server]]:
    """Factory: servers(site, **env) -> a running `python wsgi.py` on the site's database;
    servers.many(2, site, **env) -> two, started at once."""
    started: list[Server] = []

    def start(site: Site, **extra: str) -> Server:
        env = {**BACKGROUND_LOOPS_OFF, **extra}
        server = launch_server(tmp_path, site.database_url, started, **env)
        if site.event_type_id is None:
            setup_coach(site, server)
        return server

    def many(count: int, site: Site, **extra: str) -> list[Server]:
        """`count` servers started side by side, in the order asked for."""
        env = {**BACKGROUND_LOOPS_OFF, **extra}
        with ThreadPoolExecutor(count) as pool:
            launches = [
                pool.submit(launch_server, tmp_path, site.database_url, started, **env)
                for _ in range(count)
            ]
        made = [launch.result() for launch in launches]  # raises when one did not start
        if site.event_type_id is None:
            setup_coach(site, made[0])
        return made

    start.many = many
    yield start
    stop_servers(started)


class Listener:
    """A Socket.IO client (a booking page's stand-in) that joins an event type's room and
    keeps every event it hears, each with the time it arrived."""

    def __init__(self, server: Server, event_type_id: int | None = None):
        self.events: list[tuple[float, str, object]] = []
        self._changed = threading.Condition()
        self.client = socketio.Client(reconnection=False)
        self.client.on("*", self._record)
        self.client.connect(server.url, transports=["websocket"], wait_timeout=10)
        if event_type_id is not None:
            self.join(event_type_id)

    def _record(self, event: str, data=None) -> None:
        with self._changed:
            self.events.append((time.monotonic(), event, data))
            self._changed.notify_all()

    def join(self, event_type_id: int, within: float = 10) -> tuple[str, object]:
        """Emit `join`; return the first `joined` or `error` that answers it."""
        since = len(self.events)
        self.client.emit("join", {"event_type_id": event_type_id})
        return self.wait_for(("joined", "error"), within, since)

    def wait_for(self, names: tuple[str, ...] | str, within: float, since: int = 0):
        """The first (event, data) named in `names` after the `since`-th event heard, or
        AssertionError after `within` seconds."""
        names = (names,) if isinstance(names, str) else names
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                for _, event, data in self.events[since:]:
                    if event in names:
                        return event, data
                left = deadline - time.monotonic()
                if left <= 0:
                    heard = [event for _, event, _ in self.events[since:]]
                    raise AssertionError(f"no {names} within {within} s (heard {heard})")
                self._changed.wait(left)

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture
def listeners() -> Iterator[Callable[..., Listener]]:
    """Factory: listeners(server, event_type_id) -> a joined Listener, closed after."""
    made: list[Listener] = []

    def make(server: Server, event_type_id: int | None = None) -> Listener:
        listener = Listener(server, event_type_id)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


def assert_no_traceback(*servers: Server) -> None:
    for server in servers:
        text = server.log.read_text()
        assert "Traceback" not in text, text[-4000:]
