"""Writing messages into the outbox, and the registry of who delivers each kind.

`enqueue` only adds rows to the current transaction: the caller's commit makes them (and
the change that caused them) durable together. `wake` nudges this process's worker after
the commit, so an idle worker delivers at once instead of at its next poll.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context

from ..extensions import db
from .models import OutboxMessage, new_uid

# PostgreSQL: the enqueuing transaction NOTIFYs this channel (delivered on its commit), and
# every worker LISTENs on it, in whichever process it runs.
NOTIFY_CHANNEL = "expertbook_outbox"
# Not every enqueuing commit carries a NOTIFY: PostgreSQL takes a lock for one at commit and
# holds it across the commit's flush, so commits that notify go one at a time (pgbench, 16
# clients, a booking's transaction with its outbox rows: 1,055 and 1,566 a second with the
# NOTIFY, 1,470 and 2,108 without). A process's commits to a database carry one when none
# of its commits there did within NOTIFY_EVERY seconds; a worker that hears one goes on
# looking for a while after it (worker.NOTIFY_LINGER, longer), which covers the commits
# in between.
NOTIFY_EVERY = 0.5
NOTIFY_KEY = "outbox.notifies"
# engine -> when (time.monotonic()) a commit of this process last carried a NOTIFY to it
_notified: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# session.info keys: the uids enqueued in the open transaction, and (with
# DELIVER_INLINE) those committed and not yet delivered.
ENQUEUED_KEY = "outbox.enqueued"
COMMITTED_KEY = "outbox.committed"
# This process's running worker loops (worker.Worker), woken after a commit that enqueued.
running_workers: weakref.WeakSet = weakref.WeakSet()


class DeliveryError(Exception):
    """A delivery failed; the worker retries it later (or gives up when `permanent`).

    `message` is stored as the row's last error and shown to the expert: words, never a
    password or a whole answer body."""

    def __init__(self, message: str, *, status_code: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.message = message[:500]
        self.status_code = status_code
        self.permanent = permanent


class LeaseRunningOut(DeliveryError):
    """Not tried: the worker's claim on the row was about to run out, and another worker
    could take it and send it too. The worker releases the row for its next pass, without
    counting an attempt."""

    def __init__(self):
        super().__init__("Not tried: the claim was running out.")


# The running delivery's question "is its claim running out?" (set by the worker around a
# chunk; per thread and green thread). Outside a worker: never.
_lease_running_out: ContextVar[Callable[[], bool] | None] = ContextVar(
    "outbox_lease_running_out", default=None
)


@contextmanager
def lease_check(running_out: Callable[[], bool]) -> Iterator[None]:
    """Within the block, lease_running_out() asks `running_out`."""
    token = _lease_running_out.set(running_out)
    try:
        yield
    finally:
        _lease_running_out.reset(token)


def lease_running_out() -> bool:
    """Whether a handler delivering several messages should stop before the next one (and
    answer LeaseRunningOut for the rest): the claim on them is about to run out."""
    running_out = _lease_running_out.get()
    return running_out is not None and running_out()


# What became of one delivery: the receiver's status code (or None), or the error.
Outcome = int | None | DeliveryError
# kind -> deliver(message) ; called by the worker outside any transaction, with an app
# context. Returns the receiver's status code (or None); raises DeliveryError to retry.
Handler = Callable[[OutboxMessage], "int | None"]
HANDLERS: dict[str, Handler] = {}
# kind -> deliver(messages) -> one Outcome per message, in order: for kinds whose messages
# are cheaper together (mails: their bookings in one query, one SMTP connection). When a
# kind has one, the worker hands it the batch's messages of that kind in a few chunks.
BatchHandler = Callable[[Sequence[OutboxMessage]], "list[Outcome]"]
BATCH_HANDLERS: dict[str, BatchHandler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that delivers one message of `kind`."""

    def register(function: Handler) -> Handler:
        HANDLERS[kind] = function
        return function

    return register


def batch_handler(kind: str) -> Callable[[BatchHandler], BatchHandler]:
    """Register the function that delivers several messages of `kind` at once."""

    def register(function: BatchHandler) -> BatchHandler:
        BATCH_HANDLERS[kind] = function
        return function

    return register


def message_row(
    kind: str,
    *,
    now: datetime,
    due_at: datetime | None = None,
    event: str = "",
    booking_id: int | None = None,
    expert_id: int | None = None,
    endpoint_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of one new message (due at once unless `due_at`), for `enqueue`."""
    return dict(
        uid=new_uid(),
        kind=kind,
        event=event,
        booking_id=booking_id,
        expert_id=expert_id,
        endpoint_id=endpoint_id,
        payload=payload or {},
        status=OutboxMessage.PENDING,
        due_at=due_at or now,
        claimed_until=None,
        attempts=0,
        last_error="",
        status_code=None,
        created_at=now,
        delivered_at=None,
    )


def without_manage_url(payload: dict) -> dict:
    """A message's payload without the guest's tokened link (the guest's only key to the
    booking: kept no longer than the message that carries it needs it)."""
    return {key: value for key, value in payload.items() if key != "manage_url"}


def enqueue(rows: list[dict[str, Any]]) -> None:
    """Add `rows` (from message_row) to the current transaction, in one INSERT; on
    PostgreSQL also NOTIFY the workers, which hear it once this commits. (One statement
    for both, a multi-VALUES INSERT in a CTE, costs more: it is compiled anew each time.)"""
    if not rows:
        return
    session = db.session
    session.execute(_INSERT, rows)
    engine = session.get_bind()
    if engine.dialect.name == "postgresql" and notify_due(engine):
        session.execute(_NOTIFY)
        session.info[NOTIFY_KEY] = engine
    session.info.setdefault(ENQUEUED_KEY, []).extend(row["uid"] for row in rows)


def notify_due(engine) -> bool:
    """Whether a transaction that enqueues is to NOTIFY the workers: none of this process's
    commits to the database of `engine` did within NOTIFY_EVERY. The caller then sends the
    NOTIFY in the transaction, and names the engine to `committed`. (Until the first of
    them commits, several transactions may each carry one.)"""
    last = _notified.get(engine)
    return last is None or time.monotonic() - last >= NOTIFY_EVERY


def committed(uids: Sequence[str], notified=None) -> None:
    """Messages `uids` were enqueued and are now committed, by a commit that NOTIFYed the
    workers of the database of engine `notified` (None: it did not): wake this process's
    workers at once (an idle one would otherwise wait for its next poll). The session's
    commits report here by themselves (_after_commit); a transaction outside the session
    (a booking's on PostgreSQL) calls it after its COMMIT."""
    if notified is not None:
        _notified[notified] = time.monotonic()
    if not uids:
        return
    for worker in list(running_workers):
        worker.wake()
    if has_app_context() and current_app.config.get("DELIVER_INLINE"):
        db.session.info.setdefault(COMMITTED_KEY, []).extend(uids)


_INSERT = sa.insert(OutboxMessage.__table__)
_NOTIFY = sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, ""))


@sa.event.listens_for(db.session, "after_commit")
def _after_commit(session) -> None:
    committed(session.info.pop(ENQUEUED_KEY, None) or (), session.info.pop(NOTIFY_KEY, None))


@sa.event.listens_for(db.session, "after_rollback")
def _after_rollback(session) -> None:
    session.info.pop(ENQUEUED_KEY, None)
    session.info.pop(NOTIFY_KEY, None)
