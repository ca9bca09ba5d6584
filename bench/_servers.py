"""Shared helpers for the bench scripts: real server processes, a fresh PostgreSQL database,
a thread pool of kept-alive HTTP clients, and a light Socket.IO listener.

Everything is loopback-only and bounded: every wait has a deadline, every process started
here is stopped by `ServerGroup.stop()` (also on exit).

The Socket.IO listener speaks Engine.IO 4 over a raw websocket on one asyncio loop (no extra
dependency, and far lighter than one `socketio.Client` thread set per socket), so hundreds of
listeners fit in the benchmarking process and each records `time.perf_counter()` the moment
its bytes arrive.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --------------------------------------------------------------------------- figures


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 30 samples is their maximum)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(met: bool) -> str:
    return "target met" if met else "target missed"


# --------------------------------------------------------------------------- database


def fresh_postgres(server_url: str, name: str) -> str:
    """Drop and create database `name` on the server of `server_url`; return its URL."""
    import sqlalchemy as sa

    from config import normalize_database_url

    server = sa.make_url(normalize_database_url(server_url))
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def flask_cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """`python -m flask --app wsgi ARGS` in the project root; its stdout, or SystemExit."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise SystemExit(f"flask {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that would steer the app elsewhere, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "REDIS_", "MAIL_", "DATABASE_", "EXPERTBOOK_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def addr(self) -> tuple[str, int]:
        return HOST, self.port

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (Linux /proc), else nan."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            return float("nan")


def http_get_status(host: str, port: int, path: str, timeout: float = 2) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@dataclass
class ServerGroup:
    """Server processes started from one script; stop() ends exactly those."""

    logdir: Path
    servers: list[Server] = field(default_factory=list)

    def __post_init__(self):
        atexit.register(self.stop)

    def start(
        self,
        script: str,
        count: int,
        env: dict[str, str],
        health: str = "/healthz",
        deadline: float = 45,
    ) -> list[Server]:
        """Start `count` processes of `python SCRIPT` (each on its own port) and wait until
        each answers 200 on `health`."""
        new: list[Server] = []
        for _ in range(count):
            port = free_port()
            log = self.logdir / f"{Path(script).stem}-{port}.log"
            proc_env = {
                **env,
                "HOST": HOST,
                "PORT": str(port),
                "BASE_URL": env.get("BASE_URL") or f"http://{HOST}:{port}",
            }
            with log.open("w") as output:
                process = subprocess.Popen(
                    [sys.executable, script],
                    cwd=ROOT,
                    env=proc_env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            server = Server(port, process, log)
            self.servers.append(server)
            new.append(server)
        end = time.monotonic() + deadline
        for server in new:
            while True:
                if server.process.poll() is not None:
                    raise SystemExit(
                        f"{script} exited with {server.process.returncode}:\n"
                        + server.log.read_text()[-3000:]
                    )
                try:
                    if http_get_status(HOST, server.port, health) == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > end:
                    raise SystemExit(
                        f"{script} did not answer within {deadline:.0f} s:\n"
                        + server.log.read_text()[-3000:]
                    )
                time.sleep(0.1)
        return new

    def stop(self) -> None:
        """Terminate, then kill what is left after 10 s; only our own processes."""
        for server in self.servers:
            if server.process.poll() is None:
                server.process.terminate()
        for server in self.servers:
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=10)
        self.servers.clear()


# --------------------------------------------------------------------------- calendars


# Radicale with one internal option no config file may set (as tests/calendar_servers.py
# does): without fsync, storing a 5,000-event calendar takes seconds, not tens.
_RADICALE = """
import signal, socket, sys
from radicale import config, log, server
log.setup()
configuration = config.load([(sys.argv[1], False)])
log.set_level(configuration.get("logging", "level"), False)
configuration.update({"storage": {"_filesystem_fsync": "False"}}, "bench", privileged=True)
shutdown, shutdown_out = socket.socketpair()
signal.signal(signal.SIGTERM, lambda *_: shutdown.close())
server.serve(configuration, shutdown_out)
"""


@dataclass
class Radicale:
    """A Radicale CalDAV server process (plain htpasswd auth, owner-only rights) on a free
    port; `stop()` ends it (also on exit). Data goes in over HTTP, never as files."""

    root: Path
    port: int = 0
    process: subprocess.Popen | None = None
    users: dict[str, str] = field(default_factory=dict)

    def start(self, deadline: float = 20) -> Radicale:
        self.port = free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "users").write_text("")
        config = self.root / "config"
        config.write_text(
            f"[server]\nhosts = {HOST}:{self.port}\n"
            f"[auth]\ntype = htpasswd\nhtpasswd_filename = {self.root / 'users'}\n"
            "htpasswd_encryption = plain\ndelay = 0\n"
            "[rights]\ntype = owner_only\n"
            f"[storage]\nfilesystem_folder = {self.root / 'collections'}\n"
            "[web]\ntype = none\n[logging]\nlevel = warning\n"
        )
        log = self.root / "radicale.log"
        with log.open("w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _RADICALE, str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        atexit.register(self.stop)
        end = time.monotonic() + deadline
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"radicale exited early:\n{log.read_text()[-3000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > end:
                    raise SystemExit(f"radicale did not listen within {deadline:.0f} s") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def new_user(self, username: str) -> str:
        """Add a user (Radicale reads the file on every login); returns the password."""
        password = base64.urlsafe_b64encode(os.urandom(9)).decode()
        with (self.root / "users").open("a") as f:
            f.write(f"{username}:{password}\n")
        self.users[username] = password
        return password

    def put(self, username: str, path: str, ics_text: str, timeout: float = 120) -> None:
        """PUT iCalendar text at `path` (under the server root) as `username`."""
        auth = base64.b64encode(f"{username}:{self.users[username]}".encode()).decode()
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request(
                "PUT",
                "/" + path.lstrip("/"),
                body=ics_text.encode(),
                headers={"Authorization": f"Basic {auth}", "Content-Type": "text/calendar"},
            )
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status not in (200, 201, 204):
            raise SystemExit(f"radicale PUT {path}: {response.status} {body[:300]!r}")

    def upload_calendar(self, username: str, name: str, ics_text: str) -> str:
        """Create calendar `name` of `username` from one VCALENDAR holding many events, in
        one PUT on the collection URL; returns the calendar's URL."""
        self.put(username, f"{username}/{name}/", ics_text)
        return f"{self.url}{username}/{name}/"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class StaticFeed:
    """A threaded HTTP server in this process answering every GET with one iCalendar body
    (an expert's "secret iCal address"); `stop()` ends it."""

    def __init__(self, body: bytes):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - the base class's name
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # noqa: A002 - the base class's name
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}/feed.ics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Poller(threading.Thread):
    """GET `path` on one kept-alive connection on a fixed schedule (every `every` seconds)
    until stop(). Open loop: a request's latency counts from when it was due, not from when
    it could be sent, so a server that stalls for a second shows a second's worth of slow
    requests, not one (no coordinated omission). `samples`: (due, answered, status)."""

    def __init__(self, host: str, port: int, path: str = "/healthz", every: float = 0.01):
        super().__init__(daemon=True)
        self.host, self.port, self.path, self.every = host, port, path, every
        self.samples: list[tuple[float, float, int | str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        due = time.perf_counter()
        while not self.stopping.is_set():
            due += self.every
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent = time.perf_counter()
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                response.read()
                status: int | str = response.status
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            answered = time.perf_counter()
            # Requests that fell due while this one was outstanding: each waited from its due
            # time until this answer, and would have been answered about then.
            while due + self.every < sent:
                self.samples.append((due, answered, status))
                due += self.every
            self.samples.append((due, answered, status))
        conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=35)

    def latencies(self, windows: list[tuple[float, float]], inside: bool = True) -> list[float]:
        """Milliseconds of the requests due within any of the (start, end) windows (or, with
        `inside` false, of the others)."""
        return [
            (answered - due) * 1000
            for due, answered, _ in self.samples
            if any(start <= due < end for start, end in windows) == inside
        ]


# --------------------------------------------------------------------------- HTTP load


@dataclass
class LoadResult:
    count: int
    wall: float  # seconds from the first request sent to the last response read
    statuses: Counter
    latencies_ms: list[float]
    server_cpu: float  # seconds of server CPU over the run (all given servers)
    client_cpu: float  # seconds of this process's CPU over the run
    sample_error: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.wall if self.wall > 0 else float("nan")

    def line(self, label: str, unit: str) -> str:
        lat = self.latencies_ms
        return (
            f"{label:<24} {self.rate:8.0f} {unit}/s   p50 {median(lat):6.1f} ms   "
            f"p99 {percentile(lat, 99):6.1f} ms   server CPU "
            f"{1000 * self.server_cpu / max(self.count, 1):5.2f} ms/req   "
            f"statuses {dict(sorted(self.statuses.items(), key=lambda kv: str(kv[0])))}"
        )


def run_load(
    servers: list[Server],
    build: Callable[[int], tuple],
    count: int,
    threads: int,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    deadline: float = 120,
) -> LoadResult:
    """Send requests 0..count-1 (`build(i)` -> method, path, body, and optionally headers of
    that request) from `threads` threads, each with one kept-alive connection, spread
    round-robin over `servers`.

    Stops early (the rest counted as "skipped") once `deadline` seconds have passed.
    """
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    next_index = itertools.count()
    lock = threading.Lock()
    results: list[tuple[int | str, float] | None] = [None] * count
    errors: list[str] = []
    start_gate = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(w: int) -> None:
        host, port = servers[w % len(servers)].addr
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        start_gate.wait(timeout=30)
        while True:
            with lock:
                i = next(next_index)
            if i >= count or time.monotonic() > stop_at[0]:
                break
            method, path, body, *own = build(i)
            began = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers={**all_headers, **(own or [{}])[0]})
                response = conn.getresponse()
                data = response.read()
                status: int | str = response.status
                if response.status >= 400 and len(errors) < 3:
                    errors.append(f"{method} {path}: {response.status} {data[:300]!r}")
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                if len(errors) < 3:
                    errors.append(f"{method} {path}: {error!r}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            results[i] = (status, (time.perf_counter() - began) * 1000)
        conn.close()

    pool = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(threads)]
    for thread in pool:
        thread.start()
    cpu_before = [s.cpu_seconds() for s in servers]
    client_before = time.process_time()
    stop_at[0] = time.monotonic() + deadline
    start_gate.wait(timeout=30)
    began = time.perf_counter()
    for thread in pool:
        thread.join(timeout=deadline + timeout + 5)
    wall = time.perf_counter() - began
    client_cpu = time.process_time() - client_before
    server_cpu = sum(s.cpu_seconds() - b for s, b in zip(servers, cpu_before, strict=True))

    statuses: Counter = Counter()
    latencies = []
    for item in results:
        if item is None:
            statuses["skipped"] += 1
            continue
        statuses[item[0]] += 1
        latencies.append(item[1])
    return LoadResult(
        count=len(latencies),
        wall=wall,
        statuses=statuses,
        latencies_ms=latencies,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        sample_error=errors[0] if errors else "",
    )


def json_body(payload: dict) -> bytes:
    return json.dumps(payload).encode()


def request_json(
    server: Server, method: str, path: str, payload=None, headers=None, timeout: float = 30
):
    """One request on a new connection: (status, parsed JSON or text)."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
    try:
        conn.request(
            method,
            path,
            body=json_body(payload) if payload is not None else None,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = conn.getresponse()
        raw = response.read().decode()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw


# --------------------------------------------------------------------------- Socket.IO


class SioListener(asyncio.Protocol):
    """One Socket.IO client (Engine.IO 4, websocket transport only) on a raw socket.

    `on_event(payload: bytes, received: float)` is called for every event packet other than
    `joined`/`error`, with the perf_counter() taken as its bytes came off the socket.
    """

    def __init__(self, host: str, port: int, on_event: Callable[[bytes, float], None]):
        loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.on_event = on_event
        self.buf = bytearray()
        self.upgraded = False
        self.fragments: bytearray | None = None
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future = loop.create_future()
        self.joined: asyncio.Future = loop.create_future()

    # -- transport callbacks
    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc):
        for future in (self.connected, self.joined):
            if not future.done():
                future.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes):
        received = time.perf_counter()
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = bytes(self.buf[: self.buf.find(b"\r\n")])
            del self.buf[: end + 4]
            if b" 101 " not in status_line + b" ":
                self._fail(f"websocket upgrade refused: {status_line!r}")
                return
            self.upgraded = True
        while True:
            frame = self._next_frame()
            if frame is None:
                return
            fin, opcode, payload = frame
            if opcode == 0x8:  # close
                self.transport.close()
                return
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x1, 0x2):
                if fin:
                    self._packet(payload, received)
                else:
                    self.fragments = bytearray(payload)
            elif opcode == 0x0 and self.fragments is not None:
                self.fragments += payload
                if fin:
                    whole, self.fragments = bytes(self.fragments), None
                    self._packet(whole, received)

    # -- websocket framing
    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self.buf
        if len(buf) < 2:
            return None
        fin, opcode = bool(buf[0] & 0x80), buf[0] & 0x0F
        masked, length, pos = bool(buf[1] & 0x80), buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = int.from_bytes(buf[2:10], "big"), 10
        mask = b""
        if masked:
            if len(buf) < pos + 4:
                return None
            mask, pos = bytes(buf[pos : pos + 4]), pos + 4
        if len(buf) < pos + length:
            return None
        payload = bytes(buf[pos : pos + length])
        del buf[: pos + length]
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            header = bytes([0x80 | opcode, 0x80 | n])
        elif n < 65536:
            header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(header + mask + body)

    def send_text(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    # -- Engine.IO / Socket.IO packets
    def _packet(self, packet: bytes, received: float) -> None:
        if packet.startswith(b"42"):
            if packet.startswith(b'42["joined"'):
                if not self.joined.done():
                    self.joined.set_result(True)
            elif packet.startswith(b'42["error"'):
                if not self.joined.done():
                    self.joined.set_exception(RuntimeError(packet.decode(errors="replace")))
            else:
                self.on_event(packet, received)
        elif packet == b"2":  # Engine.IO ping: answer pong, or the server drops us
            self.send_text("3")
        elif packet.startswith(b"0"):  # Engine.IO open: connect to the default namespace
            self.send_text("40")
        elif packet.startswith(b"40"):
            if not self.connected.done():
                self.connected.set_result(True)
        elif packet.startswith(b"44"):
            self._fail(f"Socket.IO connect refused: {packet!r}")
        elif packet == b"1":
            self.transport.close()

    def _fail(self, message: str) -> None:
        for future in (self.connected, self.joined):
            if not future.done():
                future.set_exception(RuntimeError(message))
        if self.transport is not None:
            self.transport.close()

    def emit(self, event: str, data) -> None:
        self.send_text("42" + json.dumps([event, data], separators=(",", ":")))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send_text("41")
            self.transport.close()


async def connect_listeners(
    addrs: list[tuple[str, int]],
    n: int,
    join_payload: dict,
    on_event: Callable[[bytes, float], None],
    *,
    concurrency: int = 50,
    timeout: float = 15,
    deadline: float = 90,
) -> list[SioListener]:
    """n listeners, spread round-robin over `addrs`, each joined (emit `join`, got
    `joined`). On any failure, closes what it opened and raises."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    opened: list[SioListener] = []

    async def one(i: int) -> SioListener:
        host, port = addrs[i % len(addrs)]
        async with gate:
            _, listener = await asyncio.wait_for(
                loop.create_connection(lambda: SioListener(host, port, on_event), host, port),
                timeout,
            )
            opened.append(listener)
            await asyncio.wait_for(listener.connected, timeout)
            listener.emit("join", join_payload)
            await asyncio.wait_for(listener.joined, timeout)
            return listener

    try:
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), deadline)
    except BaseException:
        for listener in opened:
            listener.close()
        raise


class AsyncHttp:
    """One kept-alive HTTP/1.1 connection on the asyncio loop (for timing a POST next to the
    listeners, on the same clock and loop)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> AsyncHttp:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def request(
        self,
        method: str,
        path: str,
        payload: dict | None = None,
        timeout: float = 15,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, float, float]:
        """(status, body, perf_counter just before sending, perf_counter at full response)."""
        body = json_body(payload) if payload is not None else b""
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sent = time.perf_counter()
        self.writer.write(head + body)
        status, data = await asyncio.wait_for(self._response(), timeout)
        return status, data, sent, time.perf_counter()

    async def _response(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return status, await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            for _ in range(10_000):
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            return status, b"".join(chunks)
        raise RuntimeError("response without Content-Length on a kept-alive connection")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
