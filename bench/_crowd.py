"""The crowd of bench/faults.py: booking clients and open booking pages, on one asyncio loop.

Every HTTP request goes on a connection of its own (`Connection: close`), so a killed server
costs only the requests it held, and each attempt is written down (`Attempt`) with its send
and answer times, for the fault windows to be told apart afterwards.

- `Booker`: a person booking. Reads the slots, picks one of the first few offered (so
  bookers race for the same popular times), POSTs it with an Idempotency-Key and retries
  with the same key after a connection error (on the next process, as a proxy would) or a
  503/429 (after its Retry-After). Now and then it cancels one of its bookings, which keeps
  times free for the rest of the run and sends `slot_released`. Each booker speaks from a
  loopback address of its own (127.0.2.N), so the per-address rate limits apply per person.
- `Page`: an open booking page (static/js/booking.js) on one event type: a Socket.IO client
  sticky to one process, falling over to the next when its process refuses (as a proxy
  does), reconnecting with socket.io-client's growing pauses. Its view of the offered starts
  is read on every `joined`, re-read on `slot_released` and `slots_changed`, and `slot_taken`
  is applied in place. Unlike the page, it does not also re-read after each `slot_taken`:
  that re-read would hide a lost event behind the next one, and this crowd is here to find
  lost events.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from _servers import HOST, SioListener

# What a request that got no HTTP answer is recorded as: the exception's class name.
NETWORK_ERRORS = (OSError, EOFError, TimeoutError, ValueError)
REQUEST_TIMEOUT = 20.0
# A booking or cancellation is retried for this long before it is left unresolved.
RETRY_FOR = 60.0
# socket.io-client's reconnection pauses (reconnectionDelay, reconnectionDelayMax, jitter).
RECONNECT_FIRST, RECONNECT_LONGEST = 1.0, 5.0
# booking.js: a join answered `error` is tried again after 1 s, doubling up to 30 s.
JOIN_RETRY_FIRST, JOIN_RETRY_LONGEST = 1.0, 30.0


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- HTTP


@dataclass
class Answer:
    status: int | str  # the HTTP status, or the error's class name when none came
    retry_after: str | None = None
    body: object = None

    @property
    def failed(self) -> bool:
        """No HTTP answer at all (refused, reset, cut short, timed out)."""
        return isinstance(self.status, str)


async def http(
    port: int,
    method: str,
    path: str,
    body: dict | None = None,
    headers: dict[str, str] | None = None,
    source: str | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Answer:
    """One request on a new connection (from `source`, a loopback address, when given)."""

    async def exchange() -> Answer:
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=local)
        try:
            data = json.dumps(body).encode() if body is not None else b""
            lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
            if body is not None:
                lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(data)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
            raw = await reader.read()
        finally:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
        return _parse(raw)

    return await asyncio.wait_for(exchange(), timeout)


def _parse(raw: bytes) -> Answer:
    head, sep, payload = raw.partition(b"\r\n\r\n")
    if not sep:
        raise EOFError("connection closed before the answer's head")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        payload = _unchunk(payload)
    elif len(payload) < int(headers.get("content-length", len(payload))):
        raise EOFError("connection closed in the middle of the answer")
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload.decode(errors="replace")
    return Answer(status, headers.get("retry-after"), parsed)


def _unchunk(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise EOFError("chunked answer cut short")
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


# --------------------------------------------------------------------------- the ledger


@dataclass
class Attempt:
    """One HTTP request the crowd sent, and what came of it."""

    what: str  # book | cancel | read (a booker's) | page (a page's re-read)
    port: int
    sent: float  # time.monotonic()
    answered: float
    status: int | str
    retry_after: str | None
    detail: str = ""  # the start of a 5xx answer's body


@dataclass
class Operation:
    """A booking or cancellation, through all its attempts."""

    kind: str  # book | cancel
    key: str  # the Idempotency-Key (book) or the booking's uid (cancel)
    booker: int
    event_type_id: int | None = None
    start: str | None = None
    body: dict | None = None
    source: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    final: int | str | None = None  # the last HTTP status, None while unresolved
    uid: str | None = None
    code: str | None = None  # the error code of a final 4xx

    @property
    def network_errors(self) -> int:
        return sum(isinstance(a.status, str) for a in self.attempts)


@dataclass
class Site:
    """What the crowd books on: the processes' ports, the coach's token, its event types
    (id -> minutes) and the window of whole UTC days everyone reads."""

    ports: list[int]
    token: str
    event_types: dict[int, int]
    first_day: datetime
    days: int

    @property
    def window(self) -> str:
        last = self.first_day + timedelta(days=self.days - 1)
        return f"from={self.first_day:%Y-%m-%d}&to={last:%Y-%m-%d}&tz=UTC"

    def slots_path(self, event_type_id: int) -> str:
        return f"/api/v1/event-types/{event_type_id}/slots?{self.window}"

    def grid_size(self, event_type_id: int) -> int:
        return self.days * 24 * 60 // self.event_types[event_type_id]


class Crowd:
    """Bookers and pages, their ledger, and the gate that pauses the bookers."""

    def __init__(self, site: Site, bookers: int, pages: int, seed: int = 17):
        self.site = site
        self.random = random.Random(seed)
        self.attempts: list[Attempt] = []
        self.operations: list[Operation] = []
        self.go = asyncio.Event()  # set: bookers start new operations
        self.busy = 0  # operations under way
        self.in_flight: Counter = Counter()  # (what, port) -> requests awaiting an answer
        self.crashes: list[str] = []  # a booker or page that failed: a fault of this bench
        self.stopping = False
        ids = list(site.event_types)
        self.bookers = [Booker(self, i) for i in range(bookers)]
        self.pages = [Page(self, i, ids[i % len(ids)]) for i in range(pages)]
        self._tasks: list[asyncio.Task] = []

    async def request(
        self, what: str, server: int, method: str, path: str, body=None, headers=None, source=None
    ) -> tuple[Answer, Attempt]:
        port = self.site.ports[server]
        sent = time.monotonic()
        self.in_flight[what, port] += 1
        try:
            answer = await http(port, method, path, body, headers, source)
        except NETWORK_ERRORS as error:
            answer = Answer(type(error).__name__)
        finally:
            self.in_flight[what, port] -= 1
        attempt = Attempt(what, port, sent, time.monotonic(), answer.status, answer.retry_after)
        if isinstance(answer.status, int) and answer.status >= 500:
            attempt.detail = str(answer.body)[:200]
        self.attempts.append(attempt)
        return answer, attempt

    async def open_pages(self, deadline: float = 120) -> None:
        """Start every page and wait until each has joined and read its slots."""
        gate = asyncio.Semaphore(20)
        for page in self.pages:
            self._tasks.append(asyncio.create_task(page.run(gate)))
        end = time.monotonic() + deadline
        while not all(page.live and page.view is not None for page in self.pages):
            if time.monotonic() > end:
                late = sum(not (p.live and p.view is not None) for p in self.pages)
                raise RuntimeError(f"{late} pages not live within {deadline:.0f} s")
            await asyncio.sleep(0.1)

    def start_bookers(self) -> None:
        self.go.set()
        for booker in self.bookers:
            self._tasks.append(asyncio.create_task(booker.run()))

    async def pause(self, deadline: float = 2 * RETRY_FOR) -> None:
        """Stop starting operations and wait for those under way (with their retries)."""
        self.go.clear()
        end = time.monotonic() + deadline
        while self.busy and time.monotonic() < end:
            await asyncio.sleep(0.05)

    def resume(self) -> None:
        self.go.set()

    async def close(self) -> None:
        self.stopping = True
        self.go.set()
        for task in self._tasks:
            task.cancel()
        for outcome in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                self.crashes.append(repr(outcome))
        for page in self.pages:
            page.close()
        await asyncio.sleep(0.1)  # let the transports finish closing


# --------------------------------------------------------------------------- bookers


class Booker:
    CANCEL_SHARE = 0.15  # of operations, while the booker has bookings
    NEARLY_FULL = 0.15  # cancel rather than book once fewer than this share is offered
    POPULAR = 3  # pick among the first this many offered times
    THINK = (0.8, 2.2)  # seconds between operations

    def __init__(self, crowd: Crowd, index: int):
        self.crowd = crowd
        self.index = index
        self.home = index % len(crowd.site.ports)
        self.source = f"127.0.2.{index + 1}"
        self.random = random.Random(crowd.random.random())
        self.mine: list[str] = []  # uids of this booker's confirmed bookings

    async def run(self) -> None:
        while not self.crowd.stopping:
            await self.crowd.go.wait()
            self.crowd.busy += 1
            try:
                await self.step()
            except Exception as error:  # noqa: BLE001 - reported, never silent
                self.crowd.crashes.append(f"booker {self.index}: {error!r}")
                return
            finally:
                self.crowd.busy -= 1
            await asyncio.sleep(self.random.uniform(*self.THINK))

    async def step(self) -> None:
        if self.mine and self.random.random() < self.CANCEL_SHARE:
            await self.cancel()
            return
        site = self.crowd.site
        ids = list(site.event_types)
        # Most book the short event type; the rest the long one, whose slots a short
        # booking also takes (one expert, one calendar).
        event_type_id = ids[0] if self.random.random() < 0.8 else ids[-1]
        path = site.slots_path(event_type_id)
        answer, _ = await self.crowd.request("read", self.home, "GET", path)
        if answer.status != 200:
            return
        offered = [slot["start"] for slot in answer.body["slots"]]
        if len(offered) < self.NEARLY_FULL * site.grid_size(event_type_id) and self.mine:
            await self.cancel()
        elif offered:
            await self.book(event_type_id, self.random.choice(offered[: self.POPULAR]))

    async def book(self, event_type_id: int, start: str) -> Operation:
        body = {"start": start, "name": f"Booker {self.index}", "email": f"b{self.index}@ex.com"}
        operation = Operation("book", uuid.uuid4().hex, self.index, event_type_id, start, body)
        operation.source = self.source
        path = f"/api/v1/event-types/{event_type_id}/bookings"
        await self.send(operation, path, {"Idempotency-Key": operation.key})
        if operation.final == 201:
            self.mine.append(operation.uid)
        return operation

    async def cancel(self) -> Operation:
        uid = self.mine.pop(self.random.randrange(len(self.mine)))
        operation = Operation("cancel", uid, self.index, body={"reason": "bench"})
        path = f"/api/v1/bookings/{uid}/cancel"
        await self.send(operation, path, {"Authorization": f"Bearer {self.crowd.site.token}"})
        return operation

    async def send(self, operation: Operation, path: str, headers: dict[str, str]) -> None:
        """POST until a final answer: after a network error on the next process, after a
        503 or 429 on the same one once its Retry-After has passed; at most RETRY_FOR s."""
        self.crowd.operations.append(operation)
        server, end = self.home, time.monotonic() + RETRY_FOR
        while True:
            answer, attempt = await self.crowd.request(
                operation.kind, server, "POST", path, operation.body, headers, self.source
            )
            operation.attempts.append(attempt)
            if answer.failed:
                server = (server + 1) % len(self.crowd.site.ports)
                pause = self.random.uniform(0.1, 0.4)
            elif answer.status in (429, 503):
                pause = float(answer.retry_after or 1) * self.random.uniform(0.8, 1.2)
            else:
                operation.final = answer.status
                body = answer.body if isinstance(answer.body, dict) else {}
                operation.uid = body.get("uid")
                operation.code = (body.get("error") or {}).get("code")
                return
            if time.monotonic() + pause > end:
                return  # unresolved: checked (and retried with the same key) at the end
            await asyncio.sleep(pause)


# --------------------------------------------------------------------------- pages


class PageSocket(SioListener):
    """SioListener that hands every event to its page and reports the connection's end."""

    def __init__(self, host: str, port: int, on_event: Callable[[str, object], None]):
        super().__init__(host, port, on_event=lambda packet, received: None)
        self.handle = on_event
        self.joined.set_result(None)  # unused: joins are the page's business
        self.lost = asyncio.get_running_loop().create_future()

    def _packet(self, packet: bytes, received: float) -> None:
        if packet.startswith(b"42"):
            event, *args = json.loads(packet[2:])
            self.handle(event, args[0] if args else None)
        else:
            super()._packet(packet, received)

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        if not self.lost.done():
            self.lost.set_result(None)


@dataclass
class SocketNote:
    """Something a page heard or suffered: an `error` answer, or its connection lost."""

    at: float
    port: int
    what: str  # "error:<code>" or "disconnect"


class Page:
    def __init__(self, crowd: Crowd, index: int, event_type_id: int):
        self.crowd = crowd
        self.index = index
        self.event_type_id = event_type_id
        self.minutes = crowd.site.event_types[event_type_id]
        self.home = index % len(crowd.site.ports)
        self.server = self.home
        self.random = random.Random(crowd.random.random())
        self.view: set[str] | None = None  # offered starts, as the page shows them
        self.changed_at = 0.0  # when the view last changed (time.monotonic())
        self.live = False  # joined on the current connection
        self.notes: list[SocketNote] = []
        self.events: dict[str, int] = {}
        self.reads = 0
        self.socket: PageSocket | None = None
        self._reading = False
        self._read_again = False
        self._taken_meanwhile: list[tuple[datetime, datetime]] = []
        self._join_retry = JOIN_RETRY_FIRST
        self._join_timer: asyncio.TimerHandle | None = None

    # -- connection
    async def run(self, gate: asyncio.Semaphore) -> None:
        delay = RECONNECT_FIRST
        while not self.crowd.stopping:
            async with gate:
                connected = await self._connect()
            if connected:
                delay = RECONNECT_FIRST
                await self.socket.lost
                self._on_lost()
            if self.crowd.stopping:
                return
            await asyncio.sleep(delay * self.random.uniform(0.5, 1.5))
            delay = min(delay * 2, RECONNECT_LONGEST)

    async def _connect(self) -> bool:
        """Connect to the home process, or else the next ones in turn (a proxy's failover)."""
        loop = asyncio.get_running_loop()
        ports = self.crowd.site.ports
        for step in range(len(ports)):
            server = (self.home + step) % len(ports)
            port = ports[server]
            try:
                _, sock = await asyncio.wait_for(
                    loop.create_connection(
                        lambda port=port: PageSocket(HOST, port, self._on_event), HOST, port
                    ),
                    10,
                )
            except NETWORK_ERRORS:
                continue
            try:
                await asyncio.wait_for(sock.connected, 10)
            except (*NETWORK_ERRORS, RuntimeError, ConnectionError):
                sock.close()
                continue
            self.socket, self.server = sock, server
            self._join()
            return True
        return False

    def _on_lost(self) -> None:
        self.live = False
        if self._join_timer is not None:
            self._join_timer.cancel()
            self._join_timer = None
        if not self.crowd.stopping:
            self.notes.append(SocketNote(time.monotonic(), self.port, "disconnect"))

    @property
    def port(self) -> int:
        return self.crowd.site.ports[self.server]

    def _join(self) -> None:
        self._join_timer = None
        if self.socket is not None and not self.socket.lost.done():
            self.socket.emit("join", {"event_type_id": self.event_type_id})

    def close(self) -> None:
        if self._join_timer is not None:
            self._join_timer.cancel()
        if self.socket is not None:
            self.socket.close()

    # -- events, as booking.js handles them
    def _on_event(self, event: str, payload) -> None:
        self.events[event] = self.events.get(event, 0) + 1
        if event == "error":
            code = payload.get("code") if isinstance(payload, dict) else None
            self.notes.append(SocketNote(time.monotonic(), self.port, f"error:{code}"))
            if code in ("unavailable", "internal_error"):
                pause = self._join_retry * self.random.uniform(0.8, 1.2)
                self._join_retry = min(self._join_retry * 2, JOIN_RETRY_LONGEST)
                if self._join_timer is not None:
                    self._join_timer.cancel()
                self._join_timer = asyncio.get_running_loop().call_later(pause, self._join)
            return
        if not isinstance(payload, dict) or payload.get("event_type_id") != self.event_type_id:
            return
        if event == "joined":
            self.live = True
            self._join_retry = JOIN_RETRY_FIRST
            self.reread()
        elif event == "slot_taken":
            taken = (parse_z(payload["start"]), parse_z(payload["end"]))
            if self._reading:
                self._taken_meanwhile.append(taken)
            self._mark_taken(*taken)
        elif event in ("slot_released", "slots_changed"):
            self.reread()

    def _mark_taken(self, start: datetime, end: datetime) -> None:
        if not self.view:
            return
        length = timedelta(minutes=self.minutes)
        gone = {s for s in self.view if (at := parse_z(s)) < end and start < at + length}
        if gone:
            self.view -= gone
            self.changed_at = time.monotonic()

    def reread(self) -> None:
        """Read the slots again; one read at a time, one more if asked for meanwhile."""
        self._read_again = True
        if not self._reading:
            self._reading = True
            asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            await self._read_while_asked()
        except Exception as error:  # noqa: BLE001 - reported, never silent
            self.crowd.crashes.append(f"page {self.index}: {error!r}")
        finally:
            self._reading = False
            self._taken_meanwhile = []

    async def _read_while_asked(self) -> None:
        while self._read_again and not self.crowd.stopping:
            self._read_again = False
            self._taken_meanwhile = []
            answer, _ = await self.crowd.request(
                "page", self.server, "GET", self.crowd.site.slots_path(self.event_type_id)
            )
            self.reads += 1
            if answer.status != 200:
                continue  # the page keeps what it shows
            view = {slot["start"] for slot in answer.body["slots"]}
            if view != self.view:
                self.view = view
                self.changed_at = time.monotonic()
            # A booking announced while the read was on its way may be missing from it.
            for start, end in self._taken_meanwhile:
                self._mark_taken(start, end)
