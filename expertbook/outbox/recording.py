"""Recording what a delivery came to: sent, a retry after a growing pause (with jitter),
or failed once the retry window is over; and the pacing policy from the OUTBOX_* settings."""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from ..database import write_transaction
from ..extensions import db
from ..models import UTCDateTime
from .models import OutboxMessage
from .queue import DeliveryError, LeaseRunningOut, Outcome, without_manage_url

log = logging.getLogger("expertbook.outbox")

# Jitter: each pause is its nominal length times a factor in [1, 1 + JITTER].
JITTER = 0.2


@dataclass(frozen=True)
class Policy:
    """How the worker paces itself (from the OUTBOX_* settings)."""

    batch: int = 32
    parallel: int = 8
    lease: timedelta = timedelta(minutes=5)
    first_pause: timedelta = timedelta(seconds=10)
    longest_pause: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(hours=24)
    poll: timedelta = timedelta(seconds=30)

    @classmethod
    def from_config(cls, config) -> Policy:
        return cls(
            batch=int(config["OUTBOX_BATCH"]),
            parallel=int(config["OUTBOX_PARALLEL"]),
            lease=timedelta(seconds=float(config["OUTBOX_LEASE_SECONDS"])),
            first_pause=timedelta(seconds=float(config["OUTBOX_RETRY_FIRST_SECONDS"])),
            longest_pause=timedelta(seconds=float(config["OUTBOX_RETRY_LONGEST_SECONDS"])),
            give_up_after=timedelta(hours=float(config["OUTBOX_RETRY_WINDOW_HOURS"])),
            poll=timedelta(seconds=float(config["OUTBOX_POLL_SECONDS"])),
        )

    def pause(self, attempts: int) -> timedelta:
        """The nominal pause after the `attempts`-th failed attempt: doubling, capped."""
        factor = 2 ** min(max(attempts - 1, 0), 30)
        return min(self.first_pause * factor, self.longest_pause)

    def retried_long_enough(self, attempts: int) -> bool:
        """Whether the pauses waited between the first attempt and the `attempts`-th span
        the retry window. The jitter only lengthens pauses, so a message is retried for at
        least the whole window (the contract's "at least 24 hours"), counted from its first
        attempt: a reminder written days before it was due still gets all of it."""
        span = sum((self.pause(n) for n in range(1, attempts)), timedelta())
        return span >= self.give_up_after


def retry_at(now: datetime, attempts: int, policy: Policy, rng: Callable[[], float]) -> datetime:
    """When to try again after the `attempts`-th failure: the pause, with jitter, so that
    messages failing together (a mail server down) do not all come back at once. It only
    lengthens the pause (up to JITTER), so the retry window is never cut short."""
    return now + policy.pause(attempts) * (1 + JITTER * rng())


def record(
    message: OutboxMessage,
    outcome: Outcome,
    now: datetime,
    policy: Policy,
    rng: Callable[[], float] = random.random,
) -> str:
    """Store the outcome of one delivery; returns the row's new status (see record_many)."""
    return record_many([message], [outcome], now, policy, rng)[0]


def record_many(
    messages: Sequence[OutboxMessage],
    outcomes: Sequence[Outcome],
    now: datetime,
    policy: Policy,
    rng: Callable[[], float] = random.random,
) -> list[str]:
    """Store the outcomes of deliveries, in one transaction; returns the rows' new statuses.

    Sent: delivered_at and the receiver's code. A failure: attempts + 1, the error in
    words, and due again after a growing pause; `failed` when the error is permanent or the
    row has been retried for the whole window. A row no longer pending (a reminder
    cancelled meanwhile) is left as it is. A row done with (sent or failed) loses the
    guest's manage link its payload carried: it was only kept to be sent. A row not tried
    because its claim was running out (LeaseRunningOut) is released as it was."""
    statuses: list[str] = []
    sent: dict[int | None, list[int]] = {}  # status code -> ids
    failures: list[tuple[OutboxMessage, dict]] = []
    released: list[int] = []
    for message, outcome in zip(messages, outcomes, strict=True):
        if isinstance(outcome, LeaseRunningOut):
            statuses.append(OutboxMessage.PENDING)
            released.append(message.id)
            continue
        if not isinstance(outcome, DeliveryError):
            statuses.append(OutboxMessage.SENT)
            sent.setdefault(outcome, []).append(message.id)
            continue
        attempts = message.attempts + 1
        window_over = now - message.created_at >= policy.give_up_after and (
            policy.retried_long_enough(attempts)
        )
        status = OutboxMessage.FAILED if outcome.permanent or window_over else OutboxMessage.PENDING
        statuses.append(status)
        failures.append(
            (
                message,
                dict(
                    attempts=attempts,
                    claimed_until=None,
                    status=status,
                    last_error=outcome.message,
                    status_code=outcome.status_code,
                    due_at=retry_at(now, attempts, policy, rng),
                ),
            )
        )
        level = logging.ERROR if status == OutboxMessage.FAILED else logging.WARNING
        log.log(
            level,
            "%s message %s: attempt %d failed%s: %s",
            message.kind,
            message.uid,
            attempts,
            ", given up" if status == OutboxMessage.FAILED else "",
            outcome.message,
        )
    # The guests' links go with the rows' last UPDATE, not one statement a row.
    guests = {m.id for m in messages if "manage_url" in (m.payload or {})}
    table, pending = OutboxMessage.__table__, OutboxMessage.PENDING
    dialect = db.session.get_bind().dialect.name
    with write_transaction():
        for code, ids in sent.items():
            linked = [i for i in ids if i in guests]
            values = {"ids": ids, "now": now, "code": code}
            if linked:
                values["linked"] = linked
            db.session.execute(_sent_update(dialect, bool(linked)), values)
        for message, values in failures:
            if values["status"] == OutboxMessage.FAILED and message.id in guests:
                values["payload"] = without_manage_url(message.payload)
            db.session.execute(
                sa.update(table)
                .where(table.c.id == message.id, table.c.status == pending)
                .values(**values)
            )
        if released:
            db.session.execute(
                sa.update(table)
                .where(table.c.id.in_(released), table.c.status == pending)
                .values(claimed_until=None)
            )
    if released:
        log.info("%d messages released untried: their claim was running out", len(released))
    return statuses


@functools.cache
def _sent_update(dialect: str, with_links: bool) -> sa.Update:
    """The UPDATE that records rows as sent, built once per database kind (a worker runs
    it for every chunk of mails), its values bound at each execution: `ids`, `now`, the
    receiver's `code` and, `with_links`, the rows among them (`linked`) whose payload
    loses the guest's manage link."""
    table = OutboxMessage.__table__
    values = dict(
        status=OutboxMessage.SENT,
        delivered_at=sa.bindparam("now", type_=UTCDateTime()),
        status_code=sa.bindparam("code", type_=sa.Integer()),
        last_error="",
        attempts=table.c.attempts + 1,
        claimed_until=None,
    )
    if with_links:
        values["payload"] = sa.case(
            (
                table.c.id.in_(sa.bindparam("linked", expanding=True)),
                _without_manage_url(table.c.payload, dialect),
            ),
            else_=table.c.payload,
        )
    return (
        sa.update(table)
        .where(
            table.c.id.in_(sa.bindparam("ids", expanding=True)),
            table.c.status == OutboxMessage.PENDING,
        )
        .values(**values)
    )


def _without_manage_url(payload: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """SQL for the JSON `payload` without its "manage_url" key (without_manage_url, in the
    database: one UPDATE for a whole batch instead of one a row)."""
    if dialect == "postgresql":
        removed = sa.cast(payload, JSONB).op("-")(sa.literal("manage_url"))  # json has no "-"
        return sa.cast(removed, payload.type)
    return sa.func.json_remove(payload, "$.manage_url", type_=payload.type)
