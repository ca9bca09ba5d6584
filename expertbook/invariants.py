"""What must always hold in the database, checked by `flask check-invariants`.

- No two bookings of one expert that hold time (confirmed, or pending the expert's
  confirmation) overlap. PostgreSQL's exclusion constraint makes this rare; SQLite relies
  on the serialized booking path alone; a manual edit or an import can break either.
- No outbox message is stuck. Stuck means either
  * failed: given up (retried for the whole window, or refused for good by the receiver),
    written within the last `failed_days` days; or
  * late: pending, deliverable (due, no worker's claim on it, not waiting behind an
    earlier message of its booking) for more than `late` already: no worker is delivering.
- Every confirmed or pending booking made since the outbox exists has its mail messages
  (a pending request's "request received" mails). "Since the
  outbox exists" is since its first row, so the bookings of an upgraded database, made
  before, are not counted; nor are those older than the outbox's retention (30 days),
  whose sent mails may have been swept.
- No request waiting for the expert is past its deadline by more than `late`: it should
  have been declined (and its time freed) by a web process's sweeper; none is running.

Each finding is one line of text, naming what it is about.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from .extensions import db
from .models import Booking, User
from .outbox.claims import waiting_behind_older
from .outbox.models import OutboxMessage
from .outbox.problems import problems
from .outbox.retention import RETENTION


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%MZ")


def overlapping_bookings() -> list[str]:
    """Each pair of time-holding bookings of one expert that overlap, the earlier first.

    Pairs are ordered by start, so the later one starts within the earlier one: one range
    scan of the (expert, status, start) index per booking, not a comparison of all pairs."""
    first, second = aliased(Booking), aliased(Booking)
    query = (
        sa.select(first, second, User.username)
        .join(
            second,
            sa.and_(
                second.expert_id == first.expert_id,
                second.status.in_(Booking.BLOCKING),
                second.start_at >= first.start_at,
                second.start_at < first.end_at,
                sa.or_(second.start_at > first.start_at, second.id > first.id),
            ),
        )
        .join(User, User.id == first.expert_id)
        .where(first.status.in_(Booking.BLOCKING))
        .order_by(first.expert_id, first.start_at, first.id, second.start_at, second.id)
    )
    return [
        f"overlap: expert {username}: booking {a.uid} ({_iso(a.start_at)} to {_iso(a.end_at)},"
        f" {a.status}) and booking {b.uid} ({_iso(b.start_at)} to {_iso(b.end_at)}, {b.status})"
        for a, b, username in db.session.execute(query)
    ]


def stuck_messages(now: datetime, *, late: timedelta, failed_days: int) -> list[str]:
    """Each failed message of the last `failed_days` days, and each pending message that
    has been deliverable for more than `late` (see the module's docstring)."""
    message = OutboxMessage
    # The worker delivers a booking's mails, webhooks and write-backs in order: a row
    # waiting behind an earlier pending one (itself retrying) is not stuck on its own.
    waiting = waiting_behind_older(message)
    failed = problems(
        message.status == OutboxMessage.FAILED,
        message.created_at >= now - timedelta(days=failed_days),
    )
    overdue = problems(
        message.status == OutboxMessage.PENDING,
        message.due_at < now - late,
        sa.or_(message.claimed_until.is_(None), message.claimed_until < now),
        sa.not_(waiting),
    )
    lines = []
    for problem in failed:
        lines.append(
            f"stuck: failed {problem.kind} message {problem.uid} ({_about(problem)}):"
            f" given up after {problem.attempts} attempt(s): {problem.last_error or 'no error'}"
        )
    for problem in overdue:
        minutes = int((now - problem.due_at).total_seconds() // 60)
        error = f", last error: {problem.last_error}" if problem.last_error else ""
        lines.append(
            f"stuck: pending {problem.kind} message {problem.uid} ({_about(problem)}):"
            f" due {_iso(problem.due_at)}, {minutes} minutes ago,"
            f" {problem.attempts} attempt(s){error}"
        )
    return lines


def _about(problem) -> str:
    parts = [problem.what, f"to {problem.to}"]
    if problem.booking_uid:
        parts.append(f"booking {problem.booking_uid}")
    if problem.expert:
        parts.append(f"expert {problem.expert}")
    return ", ".join(parts)


def bookings_without_messages(now: datetime) -> list[str]:
    """Each confirmed or pending booking made since the outbox's first row, and within its
    retention (older mails may have been swept), that has no mail in it."""
    since = db.session.scalar(sa.select(sa.func.min(OutboxMessage.created_at)))
    if since is None:
        return []  # no outbox row at all: nothing was booked since it exists
    since = max(since, now - RETENTION)
    has_mail = (
        sa.select(OutboxMessage.id)
        .where(OutboxMessage.booking_id == Booking.id, OutboxMessage.kind == OutboxMessage.MAIL)
        .exists()
    )
    query = (
        sa.select(Booking, User.username)
        .join(User, User.id == Booking.expert_id)
        .where(Booking.status.in_(Booking.BLOCKING), Booking.created_at >= since, ~has_mail)
        .order_by(Booking.id)
    )
    return [
        f"missing: booking {booking.uid} of expert {username} (made {_iso(booking.created_at)},"
        f" starts {_iso(booking.start_at)}) has no mail in the outbox"
        for booking, username in db.session.execute(query)
    ]


def overdue_requests(now: datetime, *, late: timedelta) -> list[str]:
    """Each pending request whose deadline passed more than `late` ago: still holding a time
    nobody will confirm, its booker never told."""
    query = (
        sa.select(Booking, User.username)
        .join(User, User.id == Booking.expert_id)
        .where(Booking.status == Booking.PENDING, Booking.confirm_by < now - late)
        .order_by(Booking.confirm_by)
    )
    return [
        f"overdue: request {booking.uid} of expert {username} is still pending, its deadline"
        f" {_iso(booking.confirm_by)} passed (no sweeper is declining requests)"
        for booking, username in db.session.execute(query)
    ]


def violations(now: datetime, *, late: timedelta, failed_days: int) -> list[str]:
    """Every finding, one line each: overlaps, stuck messages, bookings without messages,
    overdue requests."""
    return [
        *overlapping_bookings(),
        *stuck_messages(now, late=late, failed_days=failed_days),
        *bookings_without_messages(now),
        *overdue_requests(now, late=late),
    ]
