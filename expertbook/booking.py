"""Booking operations: book a slot (confirmed, or pending the expert's confirmation), cancel,
reschedule. They take the actor and `now` as arguments and raise
domain errors; callers commit-then-emit (the operations commit their own serialized
transaction, since the lock must span the check and the insert)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from . import booking_statements as statements
from .accounts import AccountError, normalize_email

# The checks shared with holds; the errors are also this module's (callers import them here).
from .booking_checks import (
    HELD_MESSAGE,  # noqa: F401
    Holder,
    LimitReached,  # noqa: F401
    Locked,
    SlotHeld,  # noqa: F401
    SlotUnavailable,
    UnknownEventType,
    check_free,
    counted_holds,
    lock_expert,
    read_locked,
    retry_after,  # noqa: F401
)
from .bookings.manage_links import derive_token
from .database import BookingBusy, booking_transaction
from .errors import FieldError
from .extensions import db
from .models import Booking, EventType, Hold, IdempotencyKey, User, hash_token, utcnow
from .outbox.events import booking_changed, booking_messages
from .outbox.queue import ENQUEUED_KEY, enqueue
from .questions import check_answers
from .scheduling import Interval, is_valid_timezone
from .slots import (
    busy_intervals,
    counted_starts,
    has_limits,
    live_holds,
    within_any_horizon,
)
from .text import multiline
from .video import create_meeting

log = logging.getLogger("expertbook.booking")

MAX_NAME = 100
MAX_NOTES = 2000
MAX_IDEMPOTENCY_KEY = 255
# Idempotency keys are kept at least 24 hours (the contract); older ones are swept.
IDEMPOTENCY_TTL = timedelta(hours=25)
IDEMPOTENCY_SWEEP_EVERY = timedelta(minutes=1)
# SQLSTATE of an exclusion-constraint violation: PostgreSQL's second line of defence fired.
EXCLUSION_VIOLATION = "23P01"


class OwnEventType(Exception):
    """An expert booking their own event type: nothing to book with oneself."""


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key sent again with a different request or by another caller."""


class BookingInputError(FieldError):
    """Bad booking input; `field` names it."""


@dataclass(frozen=True)
class BookingRequest:
    """Checked booking input."""

    start: datetime
    name: str
    email: str
    notes: str
    # The zone the booker picked the time in, if known.
    timezone: str = ""
    # The answers to the event type's questions as sent: checked in the booking's
    # transaction against the event type's questions as they are then.
    answers: Any = field(default_factory=dict)


@dataclass(frozen=True)
class BookingResult:
    booking: Booking
    # The stored answer to the first request (what a retry with the same key gets back).
    response: dict[str, Any]
    replayed: bool
    # Every event type of the expert, read in the transaction: the rooms to tell (None for a
    # replay, which tells nobody).
    event_type_ids: tuple[int, ...] | None = None
    # The holder's holds of this expert that the booking ended (not persistent; nobody need
    # be told of those it covers: slot_taken supersedes them).
    released_holds: tuple[Hold, ...] = ()


def check_request(
    start: datetime,
    name: Any,
    email: Any,
    notes: Any = "",
    timezone: str = "",
    answers: Any = None,
) -> BookingRequest:
    """Validate booking input before any transaction starts (`answers` only in shape: the
    event type's questions are read in the booking's transaction).

    Raises:
        BookingInputError: a missing or invalid field.
    """
    if start.tzinfo is None:
        raise BookingInputError("start", "The time needs an offset, e.g. Z or +01:00.")
    if not isinstance(name, str):
        raise BookingInputError("name", "Please give your name.")
    # Control and invisible characters have no place in a name (they break mail headers and
    # calendar files); what is left must still be a name.
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if not name or not any(ch.isalnum() for ch in name):
        raise BookingInputError("name", "Please give your name.")
    if len(name) > MAX_NAME:
        raise BookingInputError("name", f"At most {MAX_NAME} characters.")
    if not isinstance(email, str) or len(email) > 254:
        raise BookingInputError("email", "Please give a valid email address.")
    try:
        email = normalize_email(email)
    except AccountError as error:
        raise BookingInputError("email", error.message) from None
    if notes is None:
        notes = ""
    if not isinstance(notes, str):
        raise BookingInputError("notes", "Must be text.")
    if len(notes) > MAX_NOTES:
        raise BookingInputError("notes", f"At most {MAX_NOTES} characters.")
    timezone = timezone if is_valid_timezone(timezone) else ""
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        raise BookingInputError("answers", "Must be an object of question id to answer.")
    return BookingRequest(utc_start(start), name, email, multiline(notes), timezone, answers)


def utc_start(start: datetime) -> datetime:
    """An aware start in UTC.

    Raises:
        BookingInputError: the offset takes it past the calendar's ends (field "start").
    """
    try:
        return start.astimezone(UTC)
    except OverflowError:  # an offset at the calendar's very ends
        raise BookingInputError("start", "That time is out of range.") from None


def check_idempotency_key(key: Any) -> str | None:
    if key is None or key == "":
        return None
    if not isinstance(key, str) or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise BookingInputError("Idempotency-Key", "At most 255 printable characters.")
    return key


def _fingerprint(request: BookingRequest, client: User | None) -> str:
    """What makes a retry "the same request": the input and the caller."""
    parts = [request.start.isoformat(), request.name, request.email, request.notes]
    parts.append(str(client.id) if client is not None else "")
    if request.answers:  # (without answers, as keys stored before questions existed)
        parts.append(json.dumps(request.answers, sort_keys=True, default=str))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _is_exclusion_violation(error: IntegrityError) -> bool:
    return getattr(error.orig, "pgcode", None) == EXCLUSION_VIOLATION


def book_slot(
    event_type: EventType | int,
    request: BookingRequest,
    *,
    client: User | None,
    now: datetime,
    respond: Callable[[Booking, str], dict[str, Any]],
    idempotency_key: str | None = None,
    holder: Holder | None = None,
) -> BookingResult:
    """Book `request.start` of `event_type`, atomically, and commit.

    Inside one serialized transaction: lock the expert's row, replay an earlier answer for
    the same idempotency key, then, in this order, check the answers against the event
    type's questions, that the start is still offered (grid, hours, notice, horizon,
    buffers, every other confirmed or pending booking of the expert), the event type's
    limits per day and week, and that nobody else's live hold covers it; insert the booking
    (pending when the event type requires confirmation) with its outbox messages, delete the
    holder's holds of the expert, commit. On PostgreSQL that is two round trips and the
    commit (booking_statements.py).

    Args:
        event_type: what is booked, or its id (then nothing need be read before).
        request: checked input (check_request).
        client: the signed-in booker, or None for a guest.
        now: the current instant.
        respond: builds the answer from the new booking and its guest manage token; it is
            stored with the idempotency key, so a retry gets exactly the first answer.
        idempotency_key: the client's key for safe retries, if any.
        holder: who may be holding the start (hold token, browser session): their holds
            do not block it, and end with the booking. Their booking stands even when the
            hold has just expired, as long as nobody else took or holds the time.

    Returns:
        The booking, the answer, whether it is a replay, and the holds it ended.

    Raises:
        BookingInputError: an answer refused (field "answers" or "answers.<id>").
        UnknownEventType: no such event type, or it is not offered (inactive).
        SlotUnavailable: the start is taken, or not (or no longer) offered.
        LimitReached: the expert's day or week is full for this event type.
        SlotHeld: somebody else's live hold covers the time (`retry_after` seconds).
        OwnEventType: the client is the event type's expert.
        IdempotencyKeyReused: the key came with another request or caller.
    """
    event_type_id = event_type if isinstance(event_type, int) else event_type.id
    # A retry of a booking whose time has just begun still gets its first answer.
    if not within_any_horizon(request.start, now, past=IDEMPOTENCY_TTL):
        raise SlotUnavailable("That time is not available.")
    fingerprint = _fingerprint(request, client)
    holder = holder or Holder()
    postgres = db.session.get_bind().dialect.name == "postgresql"
    try:
        with booking_transaction(inline_settings=postgres) as settings:
            # Held for the whole transaction: the slot check below reads its hours.
            if postgres:
                locked = statements.read_locked(
                    settings, event_type_id, request.start, idempotency_key, holder, now
                )
            else:
                locked = read_locked(event_type_id, request.start, idempotency_key, holder, now)
            if locked is None:
                raise UnknownEventType("No such event type.")
            if locked.earlier is not None:
                request_hash, booking_id, response = locked.earlier
                # Only the same request from the same caller gets the first answer (it
                # holds the guest's manage link); anything else with that key is refused.
                if not hmac.compare_digest(request_hash, fingerprint):
                    raise IdempotencyKeyReused("This Idempotency-Key was used for another request.")
                booking = db.session.get(Booking, booking_id)
                return BookingResult(booking, response, replayed=True)
            # Fresh, not what a view loaded before the lock: it may have changed since.
            event_type = locked.event_type
            if not event_type.active:
                raise UnknownEventType("This event type is not available.")
            if client is not None and client.id == event_type.expert_id:
                raise OwnEventType("Experts cannot book their own event types.")
            answers = check_answers(event_type.questions or [], request.answers)
            check_free(event_type, request.start, now, locked, holder)
            values, token = _booking_values(event_type, request, client, now, answers)
            if postgres:
                values["id"] = locked.booking_id
            else:
                values["id"] = db.session.execute(_INSERT_BOOKING, values).inserted_primary_key[0]
            booking = _adopt_booking(values, event_type, locked.expert, client)
            response = respond(booking, token)
            # Its mails, reminders, webhooks and write-back commit with it (the outbox).
            change = "requested" if booking.is_pending else "booked"
            messages = booking_messages(
                booking, change, now=now, manage_url=response.get("manage_url"),
                known=locked.known,
            )  # fmt: skip
            released = [hold.id for hold in locked.own_holds]
            key = None
            if idempotency_key:
                key = dict(
                    event_type_id=event_type_id,
                    key=idempotency_key,
                    request_hash=fingerprint,
                    booking_id=booking.id,
                    response=response,
                    created_at=utcnow(),
                )
            if postgres:
                statements.write_booking(values, key, messages, released)
                db.session.info.setdefault(ENQUEUED_KEY, []).extend(m["uid"] for m in messages)
            else:
                enqueue(messages)
                if key is not None:
                    db.session.execute(_INSERT_KEY, key)
                if released:
                    db.session.execute(sa.delete(Hold).where(Hold.id.in_(released)))
    except IntegrityError as error:
        if _is_exclusion_violation(error):
            raise SlotUnavailable("That time was just taken.") from None
        raise
    _sweep_idempotency_keys(now)
    return BookingResult(
        booking,
        response,
        replayed=False,
        event_type_ids=locked.event_type_ids,
        released_holds=tuple(locked.own_holds),
    )


def warm_up() -> None:
    """Take the booking path's first-use costs at start, not in a user's first booking:
    import what it imports late (the outbox's mail, reminder, webhook and write-back
    producers, which pull in the calendar and mail libraries), compile PostgreSQL's
    statements, and run the address check once. Needs an app context."""
    from . import booking_mail, reminders, webhooks  # noqa: F401
    from .calendars import writeback  # noqa: F401

    if db.engine.dialect.name == "postgresql":
        statements.warm_up()
    check_request(datetime.now(UTC), "Warm Up", "warm.up@example.com")


def _sweep_idempotency_keys(now: datetime) -> None:
    """Delete stored answers past IDEMPOTENCY_TTL (they hold guests' manage links), at most
    once a minute per process, after the booking's commit: in a transaction of its own, so
    it holds no expert's lock while it deletes other experts' rows. A failure waits for the
    next minute; the booking stands."""
    due = current_app.extensions.get("expertbook.idempotency_sweep")
    if due is not None and now < due:
        return
    current_app.extensions["expertbook.idempotency_sweep"] = now + IDEMPOTENCY_SWEEP_EVERY
    try:
        with booking_transaction():  # serialized on SQLite, bounded by lock_timeout on PG
            db.session.execute(
                sa.delete(IdempotencyKey).where(IdempotencyKey.created_at < now - IDEMPOTENCY_TTL)
            )
    except (BookingBusy, OperationalError):
        log.warning("idempotency key sweep failed; retrying in a minute", exc_info=True)


def confirm_deadline(event_type: EventType, start: datetime, now: datetime) -> datetime:
    """When a pending request of `start` made at `now` is declined unanswered: at its
    start, or `confirm_within_hours` after it was made when that comes first."""
    hours = event_type.confirm_within_hours
    if hours is None:
        return start
    return min(start, now + timedelta(hours=hours))


def _booking_values(
    event_type: EventType,
    request: BookingRequest,
    client: User | None,
    now: datetime,
    answers: dict[str, Any],
) -> tuple[dict[str, Any], str]:
    """The new booking's column values (but its id), and its guest's manage token (derived
    from its uid: bookings/manage_links.py)."""
    uid = secrets.token_hex(12)
    token = derive_token(uid)
    created = utcnow()
    pending = bool(event_type.requires_confirmation)
    return dict(
        uid=uid,
        expert_id=event_type.expert_id,
        event_type_id=event_type.id,
        client_id=client.id if client is not None else None,
        name=request.name,
        email=request.email,
        notes=request.notes,
        start_at=request.start,
        end_at=request.start + timedelta(minutes=event_type.duration_minutes),
        status=Booking.PENDING if pending else Booking.CONFIRMED,
        video_url=create_meeting(event_type.location, event_type.title),
        cancel_reason="",
        cancelled_at=None,
        confirm_by=confirm_deadline(event_type, request.start, now) if pending else None,
        answers=answers,
        sequence=0,
        manage_token_hash=hash_token(token),
        timezone=request.timezone,
        created_at=created,
        updated_at=created,
    ), token


def _adopt_booking(
    values: dict[str, Any], event_type: EventType, expert: User, client: User | None
) -> Booking:
    """The inserted booking as a persistent object, with its relations, as if loaded:
    nothing left to flush (the ORM's unit of work costs several times more CPU per booking;
    the schedule version it would bump on flush is bumped by the lock)."""
    booking = Booking()
    for name, value in values.items():
        set_committed_value(booking, name, value)
    set_committed_value(booking, "event_type", event_type)
    set_committed_value(booking, "expert", expert)
    set_committed_value(booking, "client", client)
    make_transient_to_detached(booking)
    db.session.add(booking)
    return booking


class BookingStateError(Exception):
    """The booking cannot change that way (already cancelled, or already over)."""


_INSERT_BOOKING = sa.insert(Booking.__table__)
_INSERT_KEY = sa.insert(IdempotencyKey.__table__)


def _locked_booking(booking_id: int) -> Booking:
    booking = db.session.get(Booking, booking_id, populate_existing=True)
    if booking is None:  # pragma: no cover - deleted with its event type meanwhile
        raise BookingStateError("This booking no longer exists.")
    return booking


def check_reason(reason: Any) -> str:
    """A cancellation's or a decline's reason, cleaned (None: none given).

    Raises:
        BookingInputError: not text, or over MAX_NOTES characters.
    """
    if reason is None:
        return ""
    if not isinstance(reason, str) or len(reason) > MAX_NOTES:
        raise BookingInputError("reason", f"Text of at most {MAX_NOTES} characters.")
    return multiline(reason)


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
            from .booking_mail import without_invite

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
        if _is_exclusion_violation(error):
            raise SlotUnavailable("That time was just taken.") from None
        raise
    return old
