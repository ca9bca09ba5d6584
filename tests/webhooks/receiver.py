"""A real webhook receiver for the tests: a threaded HTTP/1.1 server on 127.0.0.1 that
records every request (headers and raw body) and answers as scripted, one answer per
request in order, then 200 once the script runs out (the receiver "recovers")."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before the status line
    close: bool = False  # hang up without answering
    location: str | None = None  # a redirect's Location
    repeat: int = 1  # send `body` this many times (a huge answer without the memory)
    drip: float | None = None  # send the whole answer one byte per `drip` seconds


@dataclass
class Received:
    path: str
    headers: Message  # names are case-insensitive (HTTP/1.1 clients may send lowercase)
    body: bytes
    at: float  # time.monotonic() when it arrived


@dataclass
class Receiver:
    url: str
    script: list[Answer] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    sent: int = 0  # answer body bytes handed to the socket
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, *answers: Answer) -> None:
        """Answer the next requests so, in order; 200 after them."""
        self.script.extend(answers)

    def wait_for(self, count: int, timeout: float = 15) -> list[Received]:
        """Block until `count` requests arrived (AssertionError after `timeout`)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} of {count} requests in {timeout} s")
            return list(self.received)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30

    def do_POST(self):
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with receiver.arrived:
            answer = receiver.script.pop(0) if receiver.script else Answer()
            receiver.received.append(Received(self.path, self.headers, body, time.monotonic()))
            receiver.arrived.notify_all()
        if answer.close:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if answer.delay and self.server.stopping.wait(answer.delay):
            return
        if answer.drip is not None:
            raw = b"HTTP/1.1 %d OK\r\nContent-Length: %d\r\n\r\n%s" % (
                answer.status,
                len(answer.body),
                answer.body,
            )
            for i in range(len(raw)):
                if self.server.stopping.wait(answer.drip):
                    return
                self.wfile.write(raw[i : i + 1])
                self.wfile.flush()
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer.body) * answer.repeat))
        if answer.location:
            self.send_header("Location", answer.location)
        self.end_headers()
        for _ in range(answer.repeat):
            if self.server.stopping.is_set():
                return
            self.wfile.write(answer.body)
            receiver.sent += len(answer.body)

    do_GET = do_PUT = do_POST

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, receiver_factory):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stopping = threading.Event()
        self.receiver = receiver_factory(self)

    def handle_error(self, request, client_address):
        # A client that hangs up early (a capped read, a timeout) is the point of some tests.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


@contextmanager
def receiving() -> Iterator[Receiver]:
    server = _Server(lambda s: Receiver(url=f"http://127.0.0.1:{s.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.receiver
    finally:
        server.stopping.set()
        server.shutdown()
        thread.join()
        with suppress(OSError):
            server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A scriptable webhook receiver: `.url`, `.answer(Answer(...), ...)`, `.received`."""
    with receiving() as receiver:
        yield receiver
