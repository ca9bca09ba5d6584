"""Real servers for the calendar tests: a Radicale CalDAV server and a scriptable HTTP
server (a pytest plugin, see tests/conftest.py, so every test folder has them).

Both listen on 127.0.0.1 on free ports, so the code under test speaks to them over real
sockets (pass `allow_private=True` to `expertbook.calendars.remote`, which refuses loopback
otherwise). Test data goes in through a real CalDAV client, never by writing files.
"""

from __future__ import annotations

import itertools
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import caldav
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"radicale exited early:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"radicale did not listen on {port} within {timeout} s:\n{log.read_text()}")


# --- Radicale -------------------------------------------------------------------------------


@dataclass
class RadicaleServer:
    """One Radicale process; each test gets its own user on it (see `radicale`)."""

    url: str
    htpasswd: Path
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_account(self) -> RadicaleAccount:
        username = f"expert{next(self._numbers)}"
        password = secrets.token_urlsafe(12)
        # Radicale reads the file on every login (htpasswd_cache is off), so a new line is
        # a new user at once.
        with self.htpasswd.open("a") as f:
            f.write(f"{username}:{password}\n")
        return RadicaleAccount(url=self.url, username=username, password=password)


@dataclass
class RadicaleAccount:
    """A user on the test Radicale, with helpers that set up data through the caldav client."""

    url: str
    username: str
    password: str

    def client(self) -> caldav.DAVClient:
        return caldav.DAVClient(
            self.url, username=self.username, password=self.password, enable_rfc6764=False
        )

    @property
    def principal_url(self) -> str:
        return f"{self.url}{self.username}/"

    def make_calendar(self, name: str, *, components: tuple[str, ...] = ("VEVENT",)) -> str:
        """Create a calendar called `name` holding `components`; return its URL."""
        with self.client() as client:
            calendar = client.principal().make_calendar(
                name=name,
                cal_id=secrets.token_hex(6),
                supported_calendar_component_set=list(components),
            )
            return str(calendar.url)

    def add_event(self, calendar_url: str, ics_text: str) -> str:
        """Store one event (a whole VCALENDAR text) in the calendar; return its URL."""
        with self.client() as client:
            event = client.calendar(url=calendar_url).add_event(ics_text)
            return str(event.url)

    def upload_calendar(self, name: str, ics_text: str) -> str:
        """Create calendar `name` from one VCALENDAR holding many events, in one request.

        Radicale takes a PUT of a whole calendar on a collection URL; this is how a large
        calendar is set up quickly (one PUT per event would take minutes for thousands).
        """
        url = f"{self.principal_url}{secrets.token_hex(6)}/"
        first, rest = ics_text.split("\n", 1)  # BEGIN:VCALENDAR, then the rest
        newline = "\r\n" if first.endswith("\r") else "\n"
        # Radicale takes the calendar's display name from X-WR-CALNAME.
        ics_text = f"{first.rstrip()}{newline}X-WR-CALNAME:{name}{newline}{rest}"
        with self.client() as client:
            response = client.put(url, ics_text, {"Content-Type": "text/calendar"})
            assert response.status in (200, 201, 204), response.status
        return url

    def object_urls(self, calendar_url: str) -> list[str]:
        """The URLs of every object stored in the calendar (what a test checks after a write)."""
        with self.client() as client:
            return sorted(str(e.url) for e in client.calendar(url=calendar_url).get_events())


# `python -m radicale --config FILE`, plus one internal option no config file may set.
_RADICALE = """
import signal, socket, sys
from radicale import config, log, server
log.setup()
configuration = config.load([(sys.argv[1], False)])
log.set_level(configuration.get("logging", "level"), False)
# Throwaway data: without fsync a 5,000-event upload takes seconds, not tens.
configuration.update({"storage": {"_filesystem_fsync": "False"}}, "tests", privileged=True)
shutdown, shutdown_out = socket.socketpair()
signal.signal(signal.SIGTERM, lambda *_: shutdown.close())
server.serve(configuration, shutdown_out)
"""


@pytest.fixture(scope="session")
def radicale_server(tmp_path_factory) -> Iterator[RadicaleServer]:
    """A Radicale process with htpasswd (plain) auth and owner-only rights."""
    root = tmp_path_factory.mktemp("radicale")
    port = free_port()
    htpasswd = root / "users"
    htpasswd.write_text("")
    config = root / "config"
    config.write_text(
        f"""\
[server]
hosts = 127.0.0.1:{port}

[auth]
type = htpasswd
htpasswd_filename = {htpasswd}
htpasswd_encryption = plain
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = {root / "collections"}

[web]
type = none

[logging]
level = warning
"""
    )
    log = root / "radicale.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _RADICALE, str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, log)
        yield RadicaleServer(url=f"http://127.0.0.1:{port}/", htpasswd=htpasswd)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def radicale(radicale_server) -> RadicaleAccount:
    """A fresh user on the shared Radicale: `.url`, `.username`, `.password`, `make_calendar`,
    `add_event`, `upload_calendar`."""
    return radicale_server.new_account()


# --- A scriptable HTTP server ----------------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/calendar; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    redirect: str | None = None  # answer 302 with this Location
    delay: float = 0.0  # seconds to wait before the status line
    drip: float | None = None  # send the body one byte per `drip` seconds
    repeat: int = 1  # send `body` this many times (a large answer without the memory)
    close: bool = False  # close the connection without answering
    length: bool = True  # send Content-Length; without, the body ends when the connection does
    etag: str | None = None  # send this ETag, and answer 304 to an If-None-Match with it
    # Filled in by the server, for tests to inspect:
    hits: int = 0
    not_modified: int = 0  # 304s answered
    sent: int = 0  # body bytes handed to the socket
    done: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 10  # no handler outlives a silent client for long

    def do_GET(self):
        # Any method is served alike (a CalDAV client sends PROPFIND); a body is read first.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            self._answer(404, b"not found", "text/plain")
            return
        route.hits += 1
        try:
            self._serve(route)
        finally:
            route.done.set()

    do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PROPFIND = do_REPORT = do_GET

    def _serve(self, route: Route) -> None:
        stop = self.server.stopping
        if route.close:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if route.delay and stop.wait(route.delay):
            return
        if route.etag is not None and self.headers.get("If-None-Match") == route.etag:
            route.not_modified += 1
            self._answer(304, b"", route.content_type, {"ETag": route.etag})
            return
        if route.redirect is not None:
            self._answer(
                route.status if route.status != 200 else 302,
                b"",
                "text/plain",
                {"Location": route.redirect},
            )
            return
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        if route.length:
            self.send_header("Content-Length", str(len(route.body) * route.repeat))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.etag is not None:
            self.send_header("ETag", route.etag)
        self.end_headers()
        if route.drip is not None:
            for i in range(len(route.body)):
                if stop.wait(route.drip):
                    return
                self.wfile.write(route.body[i : i + 1])
                self.wfile.flush()
                route.sent += 1
            return
        for _ in range(route.repeat):
            if stop.is_set():
                return
            self.wfile.write(route.body)
            route.sent += len(route.body)

    def _answer(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # keep test output clean


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handlers: a clean shutdown
    allow_reuse_address = True

    def __init__(self, address):
        super().__init__(address, _Handler)
        self.routes: dict[str, Route] = {}
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()

    def finish_request(self, request, client_address):
        self.connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            self.connections.discard(request)

    def close_connections(self) -> None:
        """Hang up on clients still holding a kept-alive connection, so handlers end."""
        for connection in list(self.connections):
            with suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address):
        # A client that hangs up early (the point of several tests) is not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


@dataclass
class HttpServer:
    """What the `http_server` fixture yields: `.url` and `route(path, ...) -> full URL`."""

    url: str
    _server: _Server

    def route(self, path: str, body: bytes | str = b"", **options) -> str:
        """Serve `path` as described by `Route`'s fields; return the full URL."""
        if isinstance(body, str):
            body = body.encode()
        self._server.routes[path] = Route(body=body, **options)
        return self.url + path

    def __getitem__(self, path: str) -> Route:
        return self._server.routes[path]


@contextmanager
def serving(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Iterator[HttpServer]:
    """Run a scriptable HTTP server on `host` (any 127.x address works on Linux) until exit;
    with `tls`, it speaks HTTPS."""
    server = _Server((host, 0))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield HttpServer(url=f"{scheme}://{host}:{server.server_address[1]}", _server=server)
    finally:
        server.stopping.set()  # wakes sleeping and dripping handlers
        server.shutdown()
        thread.join()
        server.close_connections()
        server.server_close()  # joins the handler threads


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    """A real threaded HTTP/1.1 server on a free 127.0.0.1 port, routes set by the test."""
    with serving() as server:
        yield server
