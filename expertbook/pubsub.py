"""Redis for several server processes: Socket.IO's message queue and the rate limits' store,
both made to outlast Redis going away.

Redis is an accelerator here, never a single point of failure. Every Redis client answers or
fails within about a second (`client_options`); the rate limits fall back to per-process
memory while Redis is away (config: RATELIMIT_IN_MEMORY_FALLBACK_ENABLED).

Socket.IO events published while Redis is away never reach the other processes, and nothing
replays them. So the message queue (`RecoveringRedisManager`) notes each room whose event
it could not publish, and once Redis answers again publishes a catch-up event to it (for a
booking page: `slots_changed`, re-read your slots); and when its own listener gets back on
the channel after losing it, it sends the same catch-up event to every room of its own
clients, for whatever the others published meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import socketio
from redis import Redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.exceptions import ResponseError
from redis.retry import Retry

from .sockets import has_input

log = logging.getLogger("expertbook.pubsub")

# Redis on the same network answers in a millisecond; one that has not in half a second is
# away (frozen, or its host gone).
TIMEOUT = 0.5
# The listener tries to get back on the channel after these pauses, doubling up to the
# longest: pages learn of a gap at most that long after Redis is back.
RETRY_FIRST = 0.25
RETRY_LONGEST = 2.0

# (event, data) to send a room that may have missed events, or None when it needs nothing.
CatchUp = Callable[[str], tuple[str, Any] | None]


def client_options() -> dict[str, Any]:
    """redis.Redis options: short timeouts, and one immediate retry (on a fresh connection,
    after a restart left the pooled one dead) instead of redis-py's ten with backoff."""
    return {
        "socket_connect_timeout": TIMEOUT,
        "socket_timeout": TIMEOUT,
        "retry": Retry(NoBackoff(), 1),
    }


class RecoveringRedisManager(socketio.RedisManager):
    """python-socketio's Redis manager, plus catch-up events for what an outage lost.

    `catch_up(room)` names the event a room gets after a gap. Publishing never reconnects
    the listener's subscription (the parent's `_publish` does, under the listener's feet):
    the client's pool makes a fresh connection by itself."""

    def __init__(self, url: str, channel: str, catch_up: CatchUp):
        super().__init__(url, channel=channel, redis_options=client_options())
        self.catch_up = catch_up
        self._missed: set[tuple[str, str]] = set()  # (namespace, room)
        self._lock = threading.Lock()  # green under eventlet's monkey-patching
        self._catching_up = False
        self._failing = False
        self._publisher = Publisher(self)

    def _client(self) -> Redis:
        if self.redis is None:
            # Makes no connection yet: a Redis that is down does not stop the start.
            self.redis = Redis.from_url(self.redis_url, **self.redis_options)
        return self.redis

    def _redis_connect(self) -> None:
        """A new subscription for the listener, on the one client."""
        if self.pubsub is not None:
            self.pubsub.close()
        self.pubsub = self._client().pubsub(ignore_subscribe_messages=True)
        self.connected = True

    # ------------------------------------------------------------------ publishing
    def _publish(self, data: dict) -> None:
        self._publisher.publish(data)

    def _published(self) -> None:
        """A message's answer came: Redis is there."""
        if self._failing:
            self._failing = False
            log.warning("Redis answers again: catching up the rooms that missed events")
            self._start_catching_up()

    def _lost(self, messages: list[dict], error: Exception) -> None:
        """Messages whose answer never came (or that could not be written)."""
        for data in messages:
            self._note_missed(data, error)

    def _note_missed(self, data: dict, error: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning("Redis unreachable, events reach this process's clients only: %s", error)
        room = data.get("room")
        if data.get("method") == "emit" and isinstance(room, str):
            with self._lock:
                self._missed.add((data.get("namespace") or "/", room))
        self._start_catching_up()

    def _start_catching_up(self) -> None:
        with self._lock:
            if self._catching_up or not self._missed:
                return
            self._catching_up = True
        self.server.start_background_task(self._catch_up_missed)

    def _catch_up_missed(self) -> None:
        """Publish a catch-up event to each room whose event was lost, once Redis answers."""
        pause = RETRY_FIRST
        while True:
            with self._lock:
                missed, self._missed = self._missed, set()
                if not missed:
                    self._catching_up = False
                    return
            failed = set()
            for namespace, room in missed:
                message = self.catch_up(room)
                if message is None:
                    continue
                event, payload = message
                try:
                    self._client().publish(self.channel, self.json.dumps(
                        self._emit_message(event, payload, namespace, room)
                    ))  # fmt: skip
                except Exception:  # noqa: BLE001 - still away: keep it for the next round
                    failed.add((namespace, room))
            if failed:
                with self._lock:
                    self._missed |= failed
                time.sleep(pause)
                pause = min(pause * 2, RETRY_LONGEST)
            elif self._failing:
                self._failing = False
                log.warning("Redis answers again: caught up the rooms that missed events")

    def _emit_message(self, event: str, data: Any, namespace: str, room: str) -> dict:
        """What PubSubManager.emit publishes for a plain emit to a room."""
        return {"method": "emit", "event": event, "data": [data], "binary": False,
                "namespace": namespace, "room": room, "skip_sid": None, "callback": None,
                "host_id": self.host_id}  # fmt: skip

    # ------------------------------------------------------------------ listening
    def _redis_listen_with_retries(self):
        """The channel's messages, for ever: after losing Redis, back on the channel within
        RETRY_LONGEST of its return, and then this process's own rooms catch up."""
        pause = RETRY_FIRST
        lost = False
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                if lost:
                    lost = False
                    log.warning("Redis listener back on the channel: own rooms re-read")
                    self._catch_up_own_rooms()
                pause = RETRY_FIRST
                yield from self.pubsub.listen()
            except Exception as error:  # noqa: BLE001 - redis errors and OSErrors alike
                if not lost:
                    log.warning("Redis listener lost the channel, retrying: %s", error)
                lost = True
                time.sleep(pause)
                pause = min(pause * 2, RETRY_LONGEST)

    def _catch_up_own_rooms(self) -> None:
        """Send every room of this process's clients its catch-up event, here only: the
        other processes catch up their own when their listeners return."""
        for namespace, rooms in list(self.rooms.items()):
            for room in list(rooms):
                message = self.catch_up(room) if isinstance(room, str) else None
                if message is not None:
                    event, payload = message
                    socketio.Manager.emit(self, event, payload, namespace=namespace, room=room)


class Publisher:
    """PUBLISH without waiting for Redis's answer in the caller: the command is written at
    once, in order, on a connection of its own, and a task of its own reads the answers.
    Under eventlet a publish that waited cost the booking request 70-80 us of CPU (the wait
    is a hub switch), against about 10 us to write it; and a frozen Redis held the request
    for the client's whole timeout.

    A message counts as published when its answer comes. Those written on a connection that
    then failed, or whose answer did not come within the socket timeout (TIMEOUT), are lost:
    the manager notes their rooms for a catch-up, as it did for a publish that failed.

    The caller never connects: with no connection, a task of its own connects while the
    messages wait (at most MAX_WAITING), written once it is up; when it fails they are lost,
    and so is every message until the next try, RETRY_FIRST later, doubling up to
    RETRY_LONGEST."""

    MAX_WAITING = 1000

    def __init__(self, manager: RecoveringRedisManager):
        self.manager = manager
        self._lock = threading.Lock()  # green under eventlet's monkey-patching
        self._connection: AbstractConnection | None = None
        self._pending: deque[dict] = deque()  # written on _connection, not yet answered
        self._wake = threading.Event()  # set while _pending holds something
        self._waiting: list[tuple[dict, str]] = []  # (message, payload) while connecting
        self._connecting = False
        self._down_until = 0.0  # time.monotonic() before which no connection is tried
        self._pause = RETRY_FIRST

    def warm_up(self) -> None:
        """Connect now, in the caller (the process's start), not in its first publish."""
        with self._lock:
            if self._connection is not None or self._connecting:
                return
            self._connecting = True
        self._connect()

    def publish(self, data: dict) -> None:
        payload = self.manager.json.dumps(data)
        lost: list[dict] = []
        error: Exception | None = None
        with self._lock:
            connection = self._connection
            if connection is not None and not self._pending and _readable(connection):
                # Nothing owed, yet something to read: Redis closed it (a restart).
                lost, error = self._drop(), ConnectionError("Redis closed the connection")
                connection = None
            if connection is None:
                if self._connecting and len(self._waiting) < self.MAX_WAITING:
                    self._waiting.append((data, payload))
                elif not self._connecting and time.monotonic() >= self._down_until:
                    self._waiting.append((data, payload))
                    self._connecting = True
                    self.manager.server.start_background_task(self._connect)
                else:
                    lost.append(data)
                    error = error or ConnectionError("no connection to Redis")
            else:
                try:
                    self._send(connection, data, payload)
                except Exception as failure:  # noqa: BLE001 - redis errors and OSErrors alike
                    lost, error = [*lost, *self._drop(), data], failure
        if lost:
            self._report_lost(lost, error)

    def _new_connection(self) -> AbstractConnection:
        """A connection of the client's kind, outside its pool (whose count of connections
        made is capped), that tries once: a retry would double a frozen Redis's wait."""
        pool = self.manager._client().connection_pool
        return pool.connection_class(**{**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)})

    def _connect(self) -> None:
        """Connect, then write what waited; or lose it, and let no one try for a while."""
        try:
            connection = self._new_connection()
            connection.connect()
        except Exception as failure:  # noqa: BLE001 - redis errors and OSErrors alike
            with self._lock:
                lost = [data for data, _ in self._waiting]
                self._waiting, self._connecting = [], False
                self._down_until = time.monotonic() + self._pause
                self._pause = min(self._pause * 2, RETRY_LONGEST)
            self._report_lost(lost, failure)
            return
        lost, error = [], None
        with self._lock:
            self._use(connection)
            waiting, self._waiting, self._connecting = self._waiting, [], False
            self._pause = RETRY_FIRST
            for data, payload in waiting:
                try:
                    self._send(connection, data, payload)
                except Exception as failure:  # noqa: BLE001 - redis errors and OSErrors alike
                    sent = len(self._pending)
                    lost = [*self._drop(), *(data for data, _ in waiting[sent:])]
                    error = failure
                    break
        if lost:
            self._report_lost(lost, error)

    def _use(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self.manager.server.start_background_task(self._read_answers, connection)

    def _send(self, connection: AbstractConnection, data: dict, payload: str) -> None:
        command = connection.pack_command("PUBLISH", self.manager.channel, payload)
        connection.send_packed_command(command, check_health=False)
        self._pending.append(data)
        self._wake.set()

    def _drop(self) -> list[dict]:
        """Close the connection; returns what was written on it and not yet answered."""
        lost, self._pending = list(self._pending), deque()
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None
        self._wake.set()  # the old reader wakes, and ends
        return lost

    def _read_answers(self, connection: AbstractConnection) -> None:
        """Read `connection`'s answers, one per message written, until it is dropped."""
        while True:
            self._wake.wait()
            with self._lock:
                if connection is not self._connection:
                    return
                if not self._pending:
                    self._wake.clear()
                    continue
            refused = None
            try:
                connection.read_response()
            except ResponseError as error:  # this message refused; the connection is fine
                refused = error
            except Exception as failure:  # noqa: BLE001 - redis errors, OSErrors, the timeout
                with self._lock:
                    lost = self._drop() if connection is self._connection else []
                self._report_lost(lost, failure)
                return
            with self._lock:
                if connection is not self._connection:
                    return
                data = self._pending.popleft()
                if not self._pending:
                    self._wake.clear()
            if refused is not None:
                self._report_lost([data], refused)
                continue
            try:
                self.manager._published()
            except Exception:  # noqa: BLE001 - the reader must outlive a failed catch-up start
                log.exception("Redis publisher: noting an answer failed")

    def _report_lost(self, lost: list[dict], error: Exception | None) -> None:
        try:
            self.manager._lost(lost, error or ConnectionError("Redis went away"))
        except Exception:  # noqa: BLE001 - the caller (a request, the reader) goes on
            log.exception("Redis publisher: noting lost messages failed")


def _readable(connection: AbstractConnection) -> bool:
    sock = getattr(connection, "_sock", None)
    return sock is None or has_input(sock.fileno())
