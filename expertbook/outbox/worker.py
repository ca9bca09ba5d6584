"""The delivery worker: claims due outbox rows (claims.py), delivers them outside any
transaction, and records what happened (recording.py). Delivery is at least once, and every
message carries a stable id so a receiver can drop a duplicate.

`Worker.run` loops: it claims what its free delivery slots can take and starts delivering
it (up to OUTBOX_PARALLEL tasks at once, each in a thread of its own: a chunk of mails, or
one message), then waits until a task ends, the next due row, a wake-up from this process
(a commit that enqueued rows) or, on PostgreSQL, a NOTIFY from any process, or the slow
safety poll, whichever comes first; woken while idle by a commit, it first lets the
committing request finish (SETTLE). `run_pass` claims one batch and delivers it whole
(tests, and DELIVER_INLINE).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from flask import Flask

from ..database import is_sqlite
from ..extensions import db
from ..models import utcnow
from . import pressure, queue, retention
from .claims import claim, next_due
from .models import OutboxMessage
from .queue import BATCH_HANDLERS, HANDLERS, NOTIFY_CHANNEL, DeliveryError, LeaseRunningOut, Outcome
from .recording import Policy, record_many

log = logging.getLogger("expertbook.outbox")

# The part of a claim's lease in which a chunk begins no new message, kept for the one in
# flight (a mail whose connection is opened again takes several SMTP steps of up to 10 s):
# what is not begun by then is released, before another worker can reclaim and resend it.
LEASE_KEPT_FOR_THE_LAST = 1 / 3

Clock = Callable[[], datetime]


def load_handlers() -> None:
    """Import the modules that register a handler for each kind."""
    from .. import booking_mail, reminders, webhooks  # noqa: F401
    from ..calendars import writeback  # noqa: F401


# --- Delivering and recording --------------------------------------------------------------------


def deliver(message: OutboxMessage) -> int | None:
    """Deliver one claimed row through its kind's handler, outside any transaction.

    Returns the receiver's status code. Raises DeliveryError for any failure: an unexpected
    exception in a handler is logged with its traceback and becomes a retry."""
    deliver_to = HANDLERS.get(message.kind)
    if deliver_to is None:
        raise DeliveryError(f"No handler delivers {message.kind!r} messages in this process.")
    try:
        return deliver_to(message)
    except DeliveryError:
        raise
    except Exception as error:
        log.exception("delivery of %s message %s failed unexpectedly", message.kind, message.uid)
        raise DeliveryError(f"Unexpected error: {type(error).__name__}.") from error
    finally:
        db.session.rollback()  # whatever the handler left open is closed before we record


def deliver_many(messages: Sequence[OutboxMessage]) -> list[Outcome]:
    """Deliver claimed rows of one kind, outside any transaction: through the kind's batch
    handler when it has one (in one call), else one by one. One outcome per row, in order;
    an unexpected exception in a batch handler is logged and becomes a retry of each row."""
    kind = messages[0].kind
    deliver_all = BATCH_HANDLERS.get(kind)
    if deliver_all is None:
        outcomes: list[Outcome] = []
        for message in messages:
            if outcomes and queue.lease_running_out():
                outcomes.append(LeaseRunningOut())
                continue
            try:
                outcomes.append(deliver(message))
            except DeliveryError as error:
                outcomes.append(error)
        return outcomes
    try:
        outcomes = list(deliver_all(messages))
        if len(outcomes) != len(messages):
            raise RuntimeError(f"{len(outcomes)} outcomes for {len(messages)} messages")
        return outcomes
    except Exception as error:
        log.exception("delivery of %d %s messages failed unexpectedly", len(messages), kind)
        return [DeliveryError(f"Unexpected error: {type(error).__name__}.")] * len(messages)
    finally:
        db.session.rollback()  # whatever the handler left open is closed before we record


def deliver_and_record(message: OutboxMessage, policy: Policy, clock: Clock) -> str:
    return deliver_and_record_many([message], policy, clock)[0]


def deliver_and_record_many(
    messages: Sequence[OutboxMessage],
    policy: Policy,
    clock: Clock,
    claimed_at: datetime | None = None,
) -> list[str]:
    """Deliver and record `messages`; with `claimed_at`, a chunk begins no message in the
    last third of the claim's lease (see LEASE_KEPT_FOR_THE_LAST)."""
    if claimed_at is None:
        return record_many(messages, deliver_many(messages), clock(), policy)
    stop_at = claimed_at + policy.lease - policy.lease * LEASE_KEPT_FOR_THE_LAST
    with queue.lease_check(lambda: clock() >= stop_at):
        outcomes = deliver_many(messages)
    return record_many(messages, outcomes, clock(), policy)


# While deliveries are under way, the loop looks for due rows at least this often (rows
# coming due meanwhile, such as reminders, wait no longer than this).
BUSY_POLL = 1.0
# After a NOTIFY from another process, the loop looks every NOTIFY_POLL for NOTIFY_LINGER:
# that process's commits within queue.NOTIFY_EVERY of the one that notified send none.
NOTIFY_LINGER = 4 * queue.NOTIFY_EVERY
NOTIFY_POLL = 0.1

# An idle loop woken by a commit waits this long before it claims: the commit's request
# is still sending its answer and its live updates (a booking's slot_taken to every open
# page of the event type, through Redis, in every process), and the mails' rendering
# delayed them. With 100 sockets over two processes, the first-to-last spread p99 was
# 3.2-4.7 ms with the loop claiming at once, 0.4-2.7 ms without a loop in the process
# (a bare emit: 1.8-2.9 ms). Commits in that moment are claimed together. `flask worker`
# (no sockets in its process) does not wait.
SETTLE = 0.02

# A batch handler's messages go in chunks of at least this many (one SMTP connection each).
# Each chunk costs its thread, its claim, its bookings' query and its record (with their
# commits) whatever its size: at 16 rather than 8, a busy worker spends a tenth less CPU a
# mail, and a mail waits behind at most 15 others of its chunk (some 30 ms).
SMALLEST_CHUNK = 16


def tasks_of(messages: Sequence[OutboxMessage], parallel: int) -> list[list[OutboxMessage]]:
    """A claimed batch split into what is delivered at once: one message alone, or, for a
    kind with a batch handler, chunks of the batch's messages of that kind (at most
    `parallel`, of SMALLEST_CHUNK or more), oldest first."""
    tasks: list[list[OutboxMessage]] = []
    grouped: dict[str, list[OutboxMessage]] = {}
    for message in messages:
        if message.kind in BATCH_HANDLERS:
            grouped.setdefault(message.kind, []).append(message)
        else:
            tasks.append([message])
    for group in grouped.values():
        chunks = max(1, min(parallel, len(group) // SMALLEST_CHUNK))
        size = -(-len(group) // chunks)
        tasks[:0] = [group[i : i + size] for i in range(0, len(group), size)]
    return tasks


def run_pass(
    app: Flask,
    *,
    clock: Clock = utcnow,
    policy: Policy | None = None,
    uids: list[str] | None = None,
) -> int:
    """Claim one batch and deliver it whole (up to policy.parallel tasks at once: single
    messages, or chunks of a kind delivered together); returns how many rows were claimed.
    Call with the app context pushed. (The loop, Worker.run, does not wait for a whole
    batch: it claims again as soon as a task ends.)"""
    policy = policy or Policy.from_config(app.config)
    claimed_at = clock()
    messages = claim(claimed_at, limit=policy.batch, lease=policy.lease, uids=uids)
    tasks = tasks_of(messages, policy.parallel)
    if policy.parallel <= 1 or len(tasks) <= 1:
        for task in tasks:
            deliver_and_record_many(task, policy, clock, claimed_at)
        return len(messages)
    slots = threading.BoundedSemaphore(policy.parallel)  # green under eventlet
    threads = [task_thread(app, task, policy, clock, claimed_at, slots) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(messages)


def task_thread(
    app: Flask,
    messages: Sequence[OutboxMessage],
    policy: Policy,
    clock: Clock,
    claimed_at: datetime,
    slots: threading.Semaphore,
    done: Callable[[], None] | None = None,
) -> threading.Thread:
    """A thread (green under eventlet), to be started, that delivers and records `messages`
    once one of `slots` is free; `done` is called when it ends, whatever came of it."""

    def deliver_in_thread() -> None:
        try:
            with slots, app.app_context():
                try:
                    statuses = deliver_and_record_many(messages, policy, clock, claimed_at)
                    if OutboxMessage.SENT in statuses:
                        pressure.delivered()
                finally:
                    db.session.remove()
        except Exception:  # noqa: BLE001 - recording failed (database away): the lease runs out
            log.exception("could not record the delivery of %d messages", len(messages))
        finally:
            if done is not None:
                done()

    return threading.Thread(target=deliver_in_thread, daemon=True)


def deliver_committed(app: Flask) -> None:
    """Deliver, at once and in this thread, what this session's last commits enqueued
    (DELIVER_INLINE: tests read a request's mails as soon as it answers)."""
    uids = db.session.info.pop(queue.COMMITTED_KEY, None)
    if not uids:
        return
    policy = Policy.from_config(app.config)
    policy = Policy(**{**policy.__dict__, "parallel": 1, "batch": len(uids)})
    for _ in range(len(uids)):  # a booking's rows in order: one pass per position at most
        if not run_pass(app, policy=policy, uids=uids):
            return


# --- The loop ------------------------------------------------------------------------------------


class Worker:
    """One delivery loop. `wake()` (from any thread) cuts its wait short; `stop()` ends it."""

    def __init__(
        self,
        app: Flask,
        *,
        poll: float | None = None,
        clock: Clock = utcnow,
        settle: float = SETTLE,
    ):
        self.app = app
        self.clock = clock
        self.settle = settle
        self.policy = Policy.from_config(app.config)
        self.poll = poll if poll is not None else self.policy.poll.total_seconds()
        self._stopping = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._listener = None
        self._heard_at = float("-inf")  # time.monotonic() of the last NOTIFY heard
        # At most one byte waits in the pipe: a busy worker is woken by thousands of
        # commits between two waits, and a full pipe would make eventlet's green os.write
        # wait (and fail when two green threads wait on it at once).
        self._wake_pending = False
        self._woken_at = 0.0  # time.monotonic() of the wake-up pending
        # Deliveries in flight (threads, green under eventlet), at most policy.parallel of
        # them delivering at once (_slots); each wakes the loop when it ends.
        self._slots = threading.BoundedSemaphore(self.policy.parallel)
        self._in_flight: set[threading.Thread] = set()
        self._in_flight_lock = threading.Lock()

    def wake(self) -> None:
        if self._wake_pending:
            return
        self._wake_pending = True
        self._woken_at = time.monotonic()
        # A full pipe means it is awake already; a closed one, that it has ended.
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b".")

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    def run(self) -> None:
        """Deliver until stopped; never ends on an error (it logs it and waits a little)."""
        load_handlers()
        queue.running_workers.add(self)
        try:
            while not self._stopping:
                try:
                    with self.app.app_context():
                        try:
                            retention.sweep_if_due(self.clock())
                            if self._start_deliveries():
                                continue  # maybe more, and a free slot to deliver them
                            if self._in_flight:
                                # The end of a delivery wakes the loop, which claims again:
                                # no need to ask when the next row is due (a query over
                                # every pending row, once per delivery when busy).
                                pause = min(self.poll, BUSY_POLL)
                            else:
                                pause = self._pause_until_next_due()
                            if time.monotonic() - self._heard_at < NOTIFY_LINGER:
                                pause = min(pause, NOTIFY_POLL)
                            self._listen()
                        finally:
                            db.session.remove()
                except Exception:  # noqa: BLE001 - the database may be away: try again soon
                    log.exception("outbox worker pass failed")
                    self._close_listener()
                    pause = min(self.poll, 5.0)
                idle = not self._in_flight
                if self._wait(pause) and idle and self.settle and not self._stopping:
                    # Woken while idle by a commit (here, or a NOTIFY from another process):
                    # its request still has live updates to send, which go first.
                    time.sleep(self.settle)
        finally:
            for thread in list(self._in_flight):
                thread.join()  # what was begun is recorded before the loop ends
            queue.running_workers.discard(self)
            pressure.reset()
            self._close_listener()
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _start_deliveries(self) -> bool:
        """Claim what the free delivery slots can take and start delivering it, without
        waiting for it (a task's end wakes the loop, which claims again: a slow chunk
        holds up no other); returns whether more may be waiting with a slot free for it."""
        free = self.policy.parallel - len(self._in_flight)
        if free <= 0:
            return False  # the end of a delivery in flight wakes the loop
        claimed_at = self.clock()
        limit = min(self.policy.batch, free * SMALLEST_CHUNK)
        messages = claim(claimed_at, limit=limit, lease=self.policy.lease)
        for task in tasks_of(messages, free):
            thread = task_thread(
                self.app, task, self.policy, self.clock, claimed_at, self._slots, self._ended
            )
            with self._in_flight_lock:
                self._in_flight.add(thread)
            thread.start()
        pressure.claimed(claimed_at, [m.due_at for m in messages if m.attempts == 0])
        return len(messages) == limit and len(self._in_flight) < self.policy.parallel

    def _ended(self) -> None:
        with self._in_flight_lock:
            self._in_flight.discard(threading.current_thread())
        self.wake()

    def _pause_until_next_due(self) -> float:
        now = self.clock()
        due = next_due(now)
        if due is None:
            return self.poll
        # At least a moment: a row due "now" that no pass could claim is racing another worker.
        return min(self.poll, max((due - now).total_seconds(), 0.05))

    def _listen(self) -> None:
        """PostgreSQL: LISTEN on a connection of our own, so commits in other processes wake
        this one (their NOTIFY is sent by the enqueuing transaction's commit)."""
        if self._listener is not None or is_sqlite():
            return
        import psycopg2

        url = db.engine.url
        args = url.translate_connect_args(username="user", database="dbname")
        args.update({k: v for k, v in url.query.items() if isinstance(v, str)})
        connection = psycopg2.connect(connect_timeout=10, **args)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
        self._listener = connection

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):  # it is being dropped anyway
                self._listener.close()
            self._listener = None

    def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, or until woken (green under eventlet: select yields);
        returns whether it was woken."""
        if self._stopping:
            return False
        watched = [self._wake_read]
        if self._listener is not None:
            watched.append(self._listener)
        waiting_since = time.monotonic()
        woken = False
        try:
            ready, _, _ = select.select(watched, [], [], max(seconds, 0))
        except (OSError, ValueError):
            self._close_listener()
            return False
        if self._wake_read in ready:
            # How late the loop runs once woken (pressure.py: the process's want of CPU);
            # a wake-up while it was not waiting counts from when it began to wait.
            pressure.woke(time.monotonic() - max(self._woken_at, waiting_since))
            woken = True
            # One read of what is there: under eventlet os.read is green and waits for more
            # instead of raising BlockingIOError, so a loop draining to empty never returns.
            # Wake-ups left over (more than 64 KB of them) only make the next wait short.
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 65536)
            # Cleared after the read, never before: a wake() between a clear and the read
            # would leave the flag set with its byte read, and every later wake() ignored.
            # A wake() skipped while the flag is still set costs nothing: the pass after
            # this wait sees what was committed.
            self._wake_pending = False
        if self._listener is not None and self._listener in ready:
            try:
                self._listener.poll()
                if self._listener.notifies:
                    self._heard_at = time.monotonic()
                    woken = True
                self._listener.notifies.clear()
            except Exception:  # noqa: BLE001 - a dropped connection: LISTEN again next pass
                self._close_listener()
        return woken


def start(app: Flask) -> Worker:
    """Run a worker in the background of this server process (a green thread)."""
    from ..extensions import socketio

    worker = Worker(app)
    socketio.start_background_task(worker.run)
    return worker


def run_forever(app: Flask) -> None:
    """`flask worker`: deliver in the foreground until Ctrl-C or SIGTERM, then return."""
    poll = None
    with app.app_context():
        if is_sqlite():
            # No NOTIFY across processes on SQLite: look every second for what web
            # processes committed (one indexed query).
            poll = min(float(app.config["OUTBOX_POLL_SECONDS"]), 1.0)
    worker = Worker(app, poll=poll, settle=0)

    def stop(_signum, _frame) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run()
