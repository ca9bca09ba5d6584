"""Bookings that wait for the expert: confirm or decline a pending request, and decline the
requests nobody answered in time.

Each answer is a compare-and-swap (`UPDATE booking ... WHERE status = 'pending'`) inside the
serialized booking transaction, under the expert's lock: a double click, or the expert and
the deadline at once, change a request exactly once, and the loser learns it (NotPending).
The messages it causes (mails, reminders, webhooks, calendar write-back) are written into
the outbox in the same transaction. Callers announce a decline's freed time after the
commit (realtime.announce_slot_released): decline_overdue returns the requests it declined,
for the sweeper to announce.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .booking import check_reason
from .booking_checks import BUMP_SCHEDULE_VERSION, lock_expert
from .database import booking_transaction, discard_transaction
from .extensions import db
from .models import Booking, User
from .outbox.events import booking_changed

log = logging.getLogger("expertbook.confirmation")

# The reason a request the expert let lapse is declined with.
LAPSED = "The expert did not answer in time."
# Requests declined by one pass of decline_overdue at most (the next pass takes the rest).
OVERDUE_BATCH = 100


class NotPending(Exception):
    """The booking is not (or no longer) waiting for the expert's answer."""


class NotTheExpert(Exception):
    """Only the booking's expert answers its request."""


def confirm_booking(booking: Booking, *, actor: User | None, now: datetime) -> Booking:
    """Confirm the pending `booking` and commit: the booker is told (with the video link and
    the calendar invite), the reminders are made, the webhook and the write-back follow.

    Args:
        booking: the request.
        actor: the expert answering, or None for a signed one-click link (the signature
            stands for the expert).
        now: the current instant; a request whose deadline has passed cannot be confirmed.

    Returns:
        The booking, reloaded, confirmed.

    Raises:
        NotTheExpert: `actor` is not the booking's expert.
        NotPending: it was confirmed or declined already, or its deadline has passed.
    """
    _check_actor(booking, actor)
    values = {"status": Booking.CONFIRMED}
    # The deadline is the same instant decline_overdue reads: one of the two wins, never both.
    in_time = sa.or_(Booking.confirm_by.is_(None), Booking.confirm_by > now)
    return _answer(booking, values, "confirmed", now=now, condition=in_time)


def decline_booking(
    booking: Booking, *, actor: User | None, reason: Any = "", now: datetime
) -> Booking:
    """Decline the pending `booking` and commit: its time is free again (the expert's
    schedule version grows), the booker is told why, no reminders remain, the webhook and
    the write-back's removal follow. The caller announces the freed time after this returns.

    Args:
        booking: the request.
        actor: the expert, or None (a one-click link, or the deadline passing).
        reason: told to the booker; at most MAX_NOTES characters.
        now: the current instant.

    Returns:
        The booking, reloaded, declined.

    Raises:
        BookingInputError: a reason that is not text or too long.
        NotTheExpert: `actor` is not the booking's expert.
        NotPending: it was confirmed or declined already.
    """
    reason = check_reason(reason)
    _check_actor(booking, actor)
    values = {"status": Booking.DECLINED, "cancel_reason": reason, "cancelled_at": now}
    return _answer(booking, values, "declined", now=now, frees_time=True)


def decline_overdue(now: datetime) -> list[Booking]:
    """Decline every request whose deadline (confirm_by) is `now` or earlier, each in its
    own transaction and the same compare-and-swap (one the expert answered meanwhile is
    left alone). Returns the requests it declined, committed, for the caller to announce
    their freed times. A request that fails is logged and left for the next pass: it must
    not keep the ones after it (in deadline order) waiting. Called every few seconds by
    the sweeper."""
    due = db.session.scalars(
        sa.select(Booking)
        .where(Booking.status == Booking.PENDING, Booking.confirm_by <= now)
        .order_by(Booking.confirm_by)
        .limit(OVERDUE_BATCH)
    ).all()
    db.session.commit()  # the read's transaction ends before each booking's own
    declined = []
    for booking in due:
        try:
            declined.append(decline_booking(booking, actor=None, reason=LAPSED, now=now))
        except NotPending:
            continue
        except Exception:  # noqa: BLE001 - the next request is declined all the same
            discard_transaction()
            log.exception("declining the overdue request %s failed", booking.uid)
            continue
        log.info("request %s declined: its deadline passed unanswered", booking.uid)
    return declined


def _check_actor(booking: Booking, actor: User | None) -> None:
    if actor is not None and actor.id != booking.expert_id:
        raise NotTheExpert("Only the expert answers a booking request.")


def _answer(
    booking: Booking,
    values: dict[str, Any],
    change: str,
    *,
    now: datetime,
    condition: sa.ColumnElement[bool] | None = None,
    frees_time: bool = False,
) -> Booking:
    """Set `values` on the booking if it is still pending (and `condition` holds), with the
    outbox messages of `change`, in one serialized transaction under the expert's lock.
    Its SEQUENCE grows: calendar apps replace the tentative copy (or remove it). Its
    deadline is cleared: answered, it has none, and the index on confirm_by that
    decline_overdue walks keeps only the requests still open, however long the history."""
    booking_id, expert_id = booking.id, booking.expert_id
    with booking_transaction():
        if frees_time:
            # The lock and the schedule version's bump in one statement, as a booking does:
            # the slots cache must not keep offering nothing at a time now free.
            db.session.execute(BUMP_SCHEDULE_VERSION, {"expert_id": expert_id})
        else:
            lock_expert(expert_id)
        swap = (
            sa.update(Booking)
            .where(Booking.id == booking_id, Booking.status == Booking.PENDING)
            .values(**values, confirm_by=None, sequence=Booking.sequence + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if condition is not None:
            swap = swap.where(condition)
        if db.session.execute(swap).rowcount != 1:
            current = db.session.get(Booking, booking_id, populate_existing=True)
            raise NotPending(why_not_pending(current))
        booking = db.session.get(Booking, booking_id, populate_existing=True)
        booking_changed(booking, change, now=now)
    return booking


def why_not_pending(booking: Booking | None) -> str:
    """Why `booking` (as it is now; None when it is gone) cannot be answered: what the loser
    of the compare-and-swap is told, and what a mail's link says once it is answered."""
    if booking is None:
        return "This booking no longer exists."
    if booking.status == Booking.CONFIRMED:
        return "This request was already confirmed."
    if booking.status == Booking.DECLINED:
        return "This request was already declined."
    if booking.status == Booking.CANCELLED:
        return "This request was cancelled."
    if booking.is_pending:
        return "The time to confirm this request has passed."
    return "This booking is not waiting for an answer."
