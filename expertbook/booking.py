"""Booking operations: book a slot (confirmed, or pending the expert's confirmation), and,
from booking_changes.py, cancel and reschedule; their input checks are booking_input.py's.
Callers import all of them, and their errors, from here. They take the actor and `now` as
arguments and raise domain errors; callers commit-then-emit (the operations commit their own
serialized transaction, since the lock must span the check and the insert)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError, OperationalError

from . import booking_statements as statements

# Cancel and reschedule, and the input checks: callers import them here too.
from .booking_changes import (  # noqa: F401
    NOT_OFFERED,
    BookingStateError,
    cancel_booking,
    confirm_deadline,
    is_exclusion_violation,
    reschedule_booking,
)

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
    lock_expert,  # noqa: F401
    read_locked,
    retry_after,  # noqa: F401
)
from .booking_input import (  # noqa: F401
    MAX_IDEMPOTENCY_KEY,
    MAX_NAME,
    MAX_NOTES,
    BookingInputError,
    BookingRequest,
    check_idempotency_key,
    check_reason,
    check_request,
    utc_start,
)
from .bookings.manage_links import derive_token
from .database import BookingBusy, InBand, booking_transaction
from .extensions import db
from .models import Booking, EventType, Hold, IdempotencyKey, User, hash_token, utcnow
from .outbox import pressure
from .outbox.events import booking_messages
from .outbox.queue import enqueue
from .questions import check_answers
from .slots import within_any_horizon
from .video import create_meeting

log = logging.getLogger("expertbook.booking")

# Idempotency keys are kept at least 24 hours (the contract); older ones are swept.
IDEMPOTENCY_TTL = timedelta(hours=25)
IDEMPOTENCY_SWEEP_EVERY = timedelta(minutes=1)


class OwnEventType(Exception):
    """An expert booking their own event type: nothing to book with oneself."""


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key sent again with a different request or by another caller."""


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


def _fingerprint(request: BookingRequest, client: User | None) -> str:
    """What makes a retry "the same request": the input and the caller."""
    parts = [request.start.isoformat(), request.name, request.email, request.notes]
    parts.append(str(client.id) if client is not None else "")
    if request.answers:  # (without answers, as keys stored before questions existed)
        parts.append(json.dumps(request.answers, sort_keys=True, default=str))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


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
    now = _wait_for_delivery(now)
    # A retry of a booking whose time has just begun still gets its first answer.
    if not within_any_horizon(request.start, now, past=IDEMPOTENCY_TTL):
        raise SlotUnavailable("That time is not available.")
    # What a retry with the key must match (without a key there is nothing to match).
    fingerprint = _fingerprint(request, client) if idempotency_key else ""
    holder = holder or Holder()
    postgres = db.engine.dialect.name == "postgresql"  # (asking the session would make one)
    try:
        # PostgreSQL: on a connection of its own, outside the session (database.py).
        with booking_transaction(own_connection=postgres) as in_band:
            # Held for the whole transaction: the slot check below reads its hours.
            if postgres:
                locked = statements.read_locked(
                    in_band, event_type_id, request.start, idempotency_key, holder, now
                )
            else:
                locked = read_locked(event_type_id, request.start, idempotency_key, holder, now)
            if locked is None:
                raise UnknownEventType("No such event type.")
            if locked.earlier is None:
                booking, response = _book_locked(
                    locked, request, client, holder, now, respond, idempotency_key, fingerprint,
                    in_band,
                )  # fmt: skip
            else:
                request_hash, booking_id, response = locked.earlier
                # Only the same request from the same caller gets the first answer (it
                # holds the guest's manage link); anything else with that key is refused.
                if not hmac.compare_digest(request_hash, fingerprint):
                    raise IdempotencyKeyReused("This Idempotency-Key was used for another request.")
    except IntegrityError as error:
        if is_exclusion_violation(error):
            raise SlotUnavailable("That time was just taken.") from None
        raise
    if locked.earlier is not None:
        return BookingResult(db.session.get(Booking, booking_id), response, replayed=True)
    _sweep_idempotency_keys(now)
    return BookingResult(
        booking,
        response,
        replayed=False,
        event_type_ids=locked.event_type_ids,
        released_holds=tuple(locked.own_holds),
    )


def _book_locked(
    locked: Locked,
    request: BookingRequest,
    client: User | None,
    holder: Holder,
    now: datetime,
    respond: Callable[[Booking, str], dict[str, Any]],
    idempotency_key: str | None,
    fingerprint: str,
    in_band: InBand,
) -> tuple[Booking, dict[str, Any]]:
    """book_slot's part under the expert's lock, after the locked read: check, then write
    the booking, its outbox messages and its idempotency key, and end the holder's holds;
    on PostgreSQL this commits (booking_statements.write_booking). Returns the booking
    (detached: in no session) and the answer."""
    # Fresh, not what a view loaded before the lock: it may have changed since.
    event_type = locked.event_type
    if not event_type.active:
        raise UnknownEventType("This event type is not available.")
    if client is not None and client.id == event_type.expert_id:
        raise OwnEventType("Experts cannot book their own event types.")
    answers = check_answers(event_type.questions or [], request.answers)
    check_free(event_type, request.start, now, locked, holder)
    values, token = _booking_values(event_type, request, client, now, answers)
    postgres = in_band.connection is not None
    if postgres:
        values["id"] = locked.booking_id
    else:
        values["id"] = db.session.execute(_INSERT_BOOKING, values).inserted_primary_key[0]
    # Detached, as if loaded: the ORM's unit of work would cost several times more CPU per
    # booking; the schedule version it would bump on flush is bumped by the lock.
    booking = statements.detached(
        Booking, values, event_type=event_type, expert=locked.expert, client=client
    )
    response = respond(booking, token)
    # Its mails, reminders, webhooks and write-back commit with it (the outbox).
    change = "requested" if booking.is_pending else "booked"
    messages = booking_messages(
        booking, change, now=now, manage_url=response.get("manage_url"), known=locked.known
    )
    released = [hold.id for hold in locked.own_holds]
    key = None
    if idempotency_key:
        key = dict(
            event_type_id=event_type.id,
            key=idempotency_key,
            request_hash=fingerprint,
            booking_id=booking.id,
            response=response,
            created_at=utcnow(),
        )
    if postgres:
        statements.write_booking(values, key, messages, released, in_band)
        return booking, response
    enqueue(messages)
    if key is not None:
        db.session.execute(_INSERT_KEY, key)
    if released:
        db.session.execute(sa.delete(Hold).where(Hold.id.in_(released)))
    return booking, response


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


def _wait_for_delivery(now: datetime) -> datetime:
    """Under a burst this process's delivery cannot keep up with, wait a moment first
    (outbox/pressure.py), holding no connection; returns `now` moved on by the wait."""
    seconds = pressure.pause(current_app.config["OUTBOX_BACKPRESSURE_SECONDS"])
    if not seconds:
        return now
    if db.session().in_transaction():
        db.session.commit()  # the view's reads: booking_transaction would commit them too
    time.sleep(seconds)  # green under eventlet
    return now + timedelta(seconds=seconds)


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


_INSERT_BOOKING = sa.insert(Booking.__table__)
_INSERT_KEY = sa.insert(IdempotencyKey.__table__)
