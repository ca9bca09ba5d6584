"""Connected calendars through real server processes (eventlet): a slow feed never freezes a
process, the background sync reaches open pages by itself, and bookings are written back to
a real Radicale, also after it was away."""

from __future__ import annotations

import contextlib
import re
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
import socketio

from tests.conftest import pg_database_url
from tests.e2e.conftest import free_port, launch_server, make_site, setup_coach, stop_servers

pytestmark = pytest.mark.e2e
# Every server here re-reads calendars every 3 s (±20%), and may reach 127.0.0.1.
CALENDAR_ENV = {"CALENDAR_SYNC_MINUTES": "0.05", "ALLOW_PRIVATE_HOSTS": "true"}
SLOW = 2.0  # seconds a slow feed keeps the server waiting
_slugs = count(1)


# --- Servers: one SQLite process, two PostgreSQL processes sharing Redis ---------------------


def _serve(tmp_path_factory, database_url: str, processes: int, **extra: str):
    site = make_site(database_url)
    started: list = []
    folder = tmp_path_factory.mktemp("calendars")
    try:
        with ThreadPoolExecutor(processes) as pool:  # they start side by side
            launches = [
                pool.submit(launch_server, folder, database_url, started, **CALENDAR_ENV, **extra)
                for _ in range(processes)
            ]
        for launch in launches:
            launch.result()  # raises when a server did not start
        setup_coach(site, started[0])
        yield site, started
    finally:
        stop_servers(started)


@pytest.fixture(scope="module")
def sqlite_servers(tmp_path_factory):
    database = tmp_path_factory.mktemp("sqlite") / "calendars.db"
    yield from _serve(tmp_path_factory, f"sqlite:///{database}", 1)


@pytest.fixture(scope="module")
def pg_servers(tmp_path_factory, redis_url):
    yield from _serve(
        tmp_path_factory, pg_database_url("expertbook_e2e_calendars"), 2, REDIS_URL=redis_url
    )


@pytest.fixture(params=["sqlite_servers", "pg_servers"])
def servers(request):
    """(site, servers) on each database; the coach starts and ends with no calendars."""
    site, started = request.getfixturevalue(request.param)
    remove_calendars(site, started[0])
    yield site, started
    remove_calendars(site, started[0])


def remove_calendars(site, server) -> None:
    status, body = server.request("GET", "/api/v1/calendars", headers=site.auth)
    assert status == 200, body
    for connection in body["calendars"]:
        status, _ = server.request("DELETE", f"/api/v1/calendars/{connection['id']}",
                                   headers=site.auth)  # fmt: skip
        assert status == 204


def new_event_type(site, server) -> int:
    """A fresh 30-minute event type of the coach (hours: all day, every day, UTC)."""
    slug = f"cal-{next(_slugs)}"
    fields = {"title": "Calendar", "slug": slug, "duration_minutes": 30}
    status, body = server.request("POST", "/api/v1/event-types", fields, site.auth)
    assert status == 201, body
    return body["id"]


def at(days: int, hour: int) -> datetime:
    start = datetime.now(UTC) + timedelta(days=days)
    return start.replace(hour=hour, minute=0, second=0, microsecond=0)


def z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def slot_starts(server, event_type_id: int, day: datetime) -> set[str]:
    d = day.date().isoformat()
    status, body = server.request(
        "GET", f"/api/v1/event-types/{event_type_id}/slots?from={d}&to={d}&tz=UTC"
    )
    assert status == 200, body
    return {slot["start"] for slot in body["slots"]}


def vevent(uid: str, start: datetime, minutes: int = 60) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//E2E//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start.strftime(fmt)}\r\n"
        f"DTEND:{(start + timedelta(minutes=minutes)).strftime(fmt)}\r\n"
        "SUMMARY:Busy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def wait_until(condition, within: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def assert_clean_logs(servers) -> None:
    for server in servers:
        text = server.log.read_text()
        assert "Traceback" not in text, text[-3000:]


class SlotsListener:
    """A Socket.IO client in one event type's room, noting each `slots_changed`."""

    def __init__(self, server, event_type_id: int):
        self.heard = threading.Event()
        joined = threading.Event()
        self.client = socketio.Client(reconnection=False)
        self.client.on("joined", lambda data: joined.set())
        self.client.on("slots_changed", self._on_changed)
        self.event_type_id = event_type_id
        self.client.connect(server.url, transports=["websocket"], wait_timeout=10)
        self.client.emit("join", {"event_type_id": event_type_id})
        assert joined.wait(10), "join was not acknowledged"

    def _on_changed(self, data):
        if data == {"event_type_id": self.event_type_id}:
            self.heard.set()

    def close(self):
        self.client.disconnect()


# --- A TCP proxy in front of Radicale that can be switched off ----------------------------


class Proxy:
    """Forwards 127.0.0.1:<port> to a server, byte for byte. `off()` closes the port (new
    connections are refused) and cuts open ones; `on()` listens on the same port again.
    Notes the time of each HTTP request with credentials passing, and can hold such requests
    of some methods back for a while (`hold`), so a remote call takes as long as a test
    needs."""

    REQUEST_LINE = re.compile(rb"([A-Z]+) \S+ HTTP/1\.[01]\r\n")
    AUTHORIZATION = re.compile(rb"\r\nauthorization:", re.IGNORECASE)

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.hold: dict[str, float] = {}
        self.requests: list[tuple[float, str]] = []
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self.on()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def on(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def off(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for sock in list(self._sockets):
                self._cut(sock)

    def times(self, method: str) -> list[float]:
        return [moment for moment, name in list(self.requests) if name == method]

    @staticmethod
    def _cut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        try:
            while chunk := source.recv(65536):
                # Only requests with credentials: a client's first try may go without and
                # be answered 401 (that is how caldav picks the kind of authentication).
                line = self.REQUEST_LINE.match(chunk) if outbound else None
                if line and self.AUTHORIZATION.search(chunk.partition(b"\r\n\r\n")[0]):
                    method = line.group(1).decode()
                    self.requests.append((time.monotonic(), method))
                    time.sleep(self.hold.get(method, 0))
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                for sock in (source, sink):
                    self._cut(sock)
                    self._sockets.discard(sock)
            source.close()


@pytest.fixture
def radicale_proxy(radicale):
    proxy = Proxy(int(radicale.url.rsplit(":", 1)[1].strip("/")))
    yield proxy
    proxy.off()


def connect_caldav(site, server, radicale, url: str) -> dict:
    account = {"kind": "caldav", "url": url, "username": radicale.username,
               "password": radicale.password}  # fmt: skip
    status, body = server.request("POST", "/api/v1/calendars", account, site.auth)
    assert status == 201, body
    return body


# --- 1. A slow feed never freezes the process ---------------------------------------------


class Prober:
    """Asks /healthz and a slots page of one server, one after the other on new connections,
    timing each answer, until stopped."""

    def __init__(self, server, slots_path: str):
        self.server, self.slots_path = server, slots_path
        self.health: list[float] = []
        self.slots: list[float] = []
        self.statuses: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for path, times in (("/healthz", self.health), (self.slots_path, self.slots)):
                began = time.monotonic()
                status, _ = self.server.request("GET", path, timeout=10)
                times.append(time.monotonic() - began)
                self.statuses.add(status)
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def assert_quick(self, slow_call: float) -> None:
        # Probed all along: a process frozen for SLOW seconds would show one answer that
        # took that long, and far fewer answers.
        assert self.statuses == {200}
        assert len(self.health) >= slow_call / 0.5, (len(self.health), slow_call)
        assert max(self.health) < 0.5, f"/healthz took {max(self.health):.2f} s"
        assert max(self.slots) < 0.5, f"slots took {max(self.slots):.2f} s"
        assert statistics.median(self.health) < 0.1


def test_a_slow_feed_does_not_freeze_the_process(servers, http_server):
    site, (server, *_) = servers
    event_type_id = new_event_type(site, server)
    busy = at(3, 9)
    day = busy.date().isoformat()
    # Headers only after SLOW seconds: the connect waits for them.
    url = http_server.route("/slow.ics", vevent("slow@example.com", busy), delay=SLOW)
    prober = Prober(server, f"/api/v1/event-types/{event_type_id}/slots?from={day}&to={day}")
    try:
        began = time.monotonic()
        status, body = server.request("POST", "/api/v1/calendars", {"kind": "ics", "url": url},
                                      site.auth)  # fmt: skip
        took = time.monotonic() - began
    finally:
        prober.stop()
    assert status == 201, body
    assert took >= SLOW
    prober.assert_quick(took)
    assert z(busy) not in slot_starts(server, event_type_id, busy)

    # Sync now, with the feed drip-fed a byte at a time over SLOW seconds.
    feed = vevent("slow@example.com", busy + timedelta(hours=2))
    http_server.route("/slow.ics", feed, drip=SLOW / len(feed))
    prober = Prober(server, f"/api/v1/event-types/{event_type_id}/slots?from={day}&to={day}")
    try:
        began = time.monotonic()
        status, body = server.request("POST", f"/api/v1/calendars/{body['id']}/sync",
                                      headers=site.auth)  # fmt: skip
        took = time.monotonic() - began
    finally:
        prober.stop()
    assert status == 200 and body["status"] == "ok", body
    assert took >= SLOW * 0.9
    prober.assert_quick(took)
    starts = slot_starts(server, event_type_id, busy)
    assert z(busy) in starts and z(busy + timedelta(hours=2)) not in starts


# --- 2. The background sync reaches open pages by itself ----------------------------------


def test_the_background_sync_updates_open_pages(servers, radicale, radicale_proxy):
    site, started = servers
    event_type_id = new_event_type(site, started[0])
    work = radicale.make_calendar("Work")
    # Each read of a calendar takes over a second: longer than the sync loop's pause, so
    # two processes that did not share the sync lease would both read in one period.
    radicale_proxy.hold["REPORT"] = 1.2
    connect_caldav(site, started[0], radicale, radicale_proxy.url)
    listeners = [SlotsListener(server, event_type_id) for server in started]
    try:
        busy = at(4, 13)
        assert z(busy) in slot_starts(started[-1], event_type_id, busy)
        radicale.add_event(work, vevent("lunch@example.com", busy, 30))  # straight to Radicale
        for listener in listeners:
            assert listener.heard.wait(10), "no slots_changed within 10 s of the change"
    finally:
        for listener in listeners:
            listener.close()
    for server in started:
        assert z(busy) not in slot_starts(server, event_type_id, busy)
    # Another period or two: the calendar is never read twice at once. (A sync may send two
    # REPORTs, one after the other: the sync after the first read lists ETags, then fetches
    # what changed.)
    assert wait_until(lambda: len(radicale_proxy.times("REPORT")) >= 3, within=10)
    reads = radicale_proxy.times("REPORT")
    gaps = [later - earlier for earlier, later in zip(reads, reads[1:], strict=False)]
    held = radicale_proxy.hold["REPORT"]
    assert min(gaps) >= held, f"two reads of one calendar {min(gaps):.2f} s apart"
    assert_clean_logs(started)


# --- 3. Bookings are written back, also after the calendar server was away ----------------


def uids_in(radicale, calendar_url: str) -> set[str]:
    with radicale.client() as client:
        events = client.calendar(url=calendar_url).events()
        return {str(event.icalendar_component["UID"]) for event in events}


@pytest.mark.parametrize("servers", ["pg_servers"], indirect=True)
def test_bookings_are_written_back_within_10_s_and_after_an_outage(
    servers, radicale, radicale_proxy
):
    site, started = servers
    event_type_id = new_event_type(site, started[0])
    receiving = radicale.make_calendar("Bookings")
    body = connect_caldav(site, started[0], radicale, radicale_proxy.url)
    (calendar,) = body["calendars"]
    status, body = started[0].request(
        "PATCH", f"/api/v1/calendars/{body['id']}",
        {"calendars": [{"id": calendar["id"], "writes": True}]}, site.auth,
    )  # fmt: skip
    assert status == 200 and body["calendars"][0]["writes"], body

    def book(server, start: datetime) -> str:
        status, body = server.request(
            "POST", f"/api/v1/event-types/{event_type_id}/bookings",
            {"start": z(start), "name": "Guest", "email": "guest@example.com"},
        )  # fmt: skip
        assert status == 201, body
        return f"{body['uid']}@127.0.0.1"  # BASE_URL's host

    uid = book(started[1], at(5, 9))
    assert wait_until(lambda: uid in uids_in(radicale, receiving), within=10), "not written"
    status, body = started[0].request(
        "POST", f"/api/v1/bookings/{uid.split('@')[0]}/cancel", {}, site.auth
    )
    assert status == 200, body
    assert wait_until(lambda: uid not in uids_in(radicale, receiving), within=10), "not removed"

    # The calendar server is away when the booking commits, and back a second later.
    radicale_proxy.off()
    uid = book(started[0], at(5, 11))
    time.sleep(1)
    assert uid not in uids_in(radicale, receiving)
    radicale_proxy.on()
    # Not there while the server was away, there after: the outbox's retry delivered it
    # (its first pause after a failure is 10 s, give or take its jitter).
    assert wait_until(lambda: uid in uids_in(radicale, receiving), within=30), "never arrived"
    assert_clean_logs(started)
