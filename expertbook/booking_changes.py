"""Changes to a booking that exists: cancel it, move it to another time; and what book_slot
shares with them (a request's deadline, the database's overlap refusal). Like book_slot,
each takes `now`, commits its own serialized transaction under the expert's lock with the
outbox messages of the change, and raises domain errors; callers announce after the
commit."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from .booking_checks import (
    Holder,
    Locked,
    SlotUnavailable,
    check_free,
    counted_holds,
    lock_expert,
)
from .booking_input import BookingInputError, check_reason, utc_start
from .booking_mail import without_invite
from .database import booking_transaction
from .extensions import db
from .models import Booking, EventType
from .outbox.events import booking_changed, booking_messages
from .outbox.queue import enqueue
from .scheduling import Interval
from .slots import busy_intervals, counted_starts, has_limits, live_holds, within_any_horizon

# SQLSTATE of an exclusion-constraint violation: PostgreSQL's second line of defence fired.
EXCLUSION_VIOLATION = "23P01"


class BookingStateError(Exception):
    """The booking cannot change that way (already cancelled, or already over)."""


def is_exclusion_violation(error: IntegrityError) -> bool:
    return getattr(error.orig, "pgcode", None) == EXCLUSION_VIOLATION


def confirm_deadline(event_type: EventType, start: datetime, now: datetime) -> datetime:
    """When a pending request of `start` made at `now` is declined unanswered: at its
    start, or `confirm_within_hours` after it was made when that comes first."""
    hours = event_type.confirm_within_hours
    if hours is None:
        return start
    return min(start, now + timedelta(hours=hours))


def _locked_booking(booking_id: int) -> Booking:
    booking = db.session.get(Booking, booking_id, populate_existing=True)
    if booking is None:  # pragma: no cover - deleted with its event type meanwhile
        raise BookingStateError("This booking no longer exists.")
    return booking


def cancel_booking(
    booking: Booking, *, reason: str | None = "", now: datetime, manage_url: str | None = None
) -> bool:
    """Cancel an upcoming booking, confirmed or pending (either participant may), and commit,
    with the messages that tell of it (`manage_url`: the guest's tokened link, when the
    caller has it). The cancellation mails of a request still pending carry no calendar
    part: no invitation went out for it, so there is nothing to cancel.

    Returns:
        True when this call cancelled it; False when it already was, or was declined
        (cancelling twice is harmless, so a retried request answers the same).

    Raises:
        BookingInputError: a reason that is not text or over MAX_NOTES characters.
        BookingStateError: the booking has already ended.
    """
    reason = check_reason(reason)
    booking_id, expert_id = booking.id, booking.expert_id
    with booking_transaction():
        lock_expert(expert_id)
        booking = _locked_booking(booking_id)
        if booking.status not in Booking.BLOCKING:  # cancelled, or declined: as good
            return False
        if booking.end_at <= now:
            raise BookingStateError("This session is already over.")
        was_pending = booking.is_pending
        booking.status = Booking.CANCELLED
        booking.cancel_reason = reason
        booking.cancelled_at = now
        # A withdrawn request has no deadline left (decline_overdue walks open ones only).
        booking.confirm_by = None
        booking.sequence += 1
        messages = booking_messages(booking, "cancelled", now=now, manage_url=manage_url)
        if was_pending:
            # Nobody got an invitation for a request (none before it is confirmed): its
            # cancellation has no calendar event to cancel.
            without_invite(messages)
        enqueue(messages)
    return True


NOT_OFFERED = "This event type is no longer offered, so the booking cannot be moved."


def _read_for_move(
    event_type: EventType, booking: Booking, new_start: datetime, now: datetime
) -> Locked:
    """What check_free needs to move `booking` to `new_start` (the booking itself left out
    of what blocks and of what counts)."""
    end = new_start + timedelta(minutes=event_type.duration_minutes)
    counted = []
    held = []
    if has_limits(event_type):
        counted = counted_starts(event_type.id, new_start, end, except_booking_id=booking.id)
        held = counted_holds(event_type.id, new_start, end, Holder(), now)
    return Locked(
        expert=booking.expert,
        event_type=event_type,
        event_type_ids=(),
        busy=busy_intervals(booking.expert_id, new_start, end, except_booking_id=booking.id),
        earlier=None,
        known={},
        booking_id=booking.id,
        holds=live_holds(booking.expert_id, new_start, end, now),
        counted=counted,
        counted_holds=held,
    )


def reschedule_booking(
    booking: Booking, new_start: datetime, *, now: datetime, manage_url: str | None = None
) -> Interval:
    """Move an upcoming booking to `new_start` (an offered slot of its event type) and commit,
    with the messages that tell of it (`manage_url` as for cancel_booking).

    The same serialized transaction as book_slot; the booking keeps its uid (calendars
    update the event) and its SEQUENCE grows, and a pending one stays pending. Its old time
    does not block the new one, nor does it count against the event type's limits; anybody's
    live hold of the new time does block it.

    Returns:
        The old time, so the caller can announce it as released.

    Raises:
        BookingStateError: cancelled or declined, already started, or its event type is
            no longer active (an expert who switched it off offers it no more; cancelling
            still works).
        SlotUnavailable: the new time is taken or not offered.
        LimitReached: the new time's day or week is full for the event type.
        SlotHeld: somebody's live hold covers the new time.
    """
    if new_start.tzinfo is None:
        raise BookingInputError("start", "The time needs an offset, e.g. Z or +01:00.")
    new_start = utc_start(new_start)
    if not within_any_horizon(new_start, now):
        raise SlotUnavailable("That time is not available.")
    booking_id, expert_id = booking.id, booking.expert_id
    try:
        with booking_transaction():
            lock_expert(expert_id)
            booking = _locked_booking(booking_id)
            if booking.status == Booking.DECLINED:
                raise BookingStateError("A declined request cannot be moved.")
            if booking.status not in Booking.BLOCKING:
                raise BookingStateError("A cancelled booking cannot be moved.")
            if booking.start_at <= now:
                raise BookingStateError("This session has already started.")
            # Fresh, as in book_slot: its duration or rules may have changed since the view.
            event_type = db.session.get(EventType, booking.event_type_id, populate_existing=True)
            if not event_type.active:
                raise BookingStateError(NOT_OFFERED)
            if new_start == booking.start_at:
                raise SlotUnavailable("That time is not available.")
            check_free(
                event_type, new_start, now, _read_for_move(event_type, booking, new_start, now),
                Holder(),
            )  # fmt: skip
            old = Interval(booking.start_at, booking.end_at)
            booking.start_at = new_start
            booking.end_at = new_start + timedelta(minutes=event_type.duration_minutes)
            if booking.is_pending:  # its deadline follows it: never after the new start
                booking.confirm_by = confirm_deadline(event_type, new_start, booking.created_at)
            booking.sequence += 1
            db.session.flush()
            booking_changed(booking, "rescheduled", now=now, manage_url=manage_url)
    except IntegrityError as error:
        if is_exclusion_violation(error):
            raise SlotUnavailable("That time was just taken.") from None
        raise
    return old
