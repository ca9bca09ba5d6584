"""Booking API: book a slot (public), list and cancel (with a token or session)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from flask import jsonify, request

from ..booking import (
    BookingInputError,
    BookingStateError,
    IdempotencyKeyReused,
    OwnEventType,
    SlotHeld,
    SlotUnavailable,
    UnknownEventType,
    book_slot,
    cancel_booking,
    check_idempotency_key,
    check_request,
)
from ..bookings.payloads import booking_payload
from ..bookings.queries import (
    ROLES,
    SCOPES,
    BadCursor,
    Position,
    booking_page,
    make_cursor,
    read_cursor,
)
from ..cache_control import no_store
from ..extensions import db, public_booking_limit
from ..models import Booking
from ..realtime import announce_booked, announce_slot_released
from . import bp
from .auth import api_user
from .errors import ApiError
from .holds import caller, held_response
from .inputs import invalid, json_object, parse_instant

BOOKING_FIELDS = {"start", "name", "email", "notes", "answers"}


@bp.post("/event-types/<int:event_type_id>/bookings")
@public_booking_limit
@no_store
def create_booking(event_type_id: int):
    """Book a slot (pending when the event type requires confirmation); a retry with the
    same Idempotency-Key gets the first answer. The holder of a hold on the time (its
    X-Hold-Token, or this browser session) books it; anybody else gets 409 slot_held."""
    body = json_object()
    for name in body:
        if name not in BOOKING_FIELDS:
            raise invalid(name, "Unknown field.", code="unknown_field")
    for name in ("start", "name", "email"):
        if body.get(name) is None:
            raise invalid(name, "This field is required.", code="missing_field")
    try:
        checked = check_request(
            parse_instant(body["start"], "start"),
            body["name"],
            body["email"],
            body.get("notes"),
            answers=body.get("answers"),
        )
        key = check_idempotency_key(request.headers.get("Idempotency-Key"))
    except BookingInputError as error:
        raise invalid(error.field, error.message) from None
    try:
        result = book_slot(
            event_type_id,  # read in the booking's transaction: no query before it
            checked,
            client=api_user(required=False),
            now=datetime.now(UTC),
            respond=booking_payload,
            idempotency_key=key,
            holder=caller(),
        )
    except BookingInputError as error:  # an answer, checked against the fresh questions
        raise invalid(error.field, error.message) from None
    except UnknownEventType:
        raise ApiError(404, "not_found", "No such event type.") from None
    except SlotHeld as error:
        return held_response(error)
    except SlotUnavailable as error:
        raise ApiError(409, "slot_unavailable", str(error)) from None
    except OwnEventType as error:
        raise ApiError(409, "own_event_type", str(error)) from None
    except IdempotencyKeyReused as error:
        raise invalid("Idempotency-Key", str(error), code="idempotency_key_reused") from None
    announce_booked(result)
    return jsonify(result.response), 201


LIST_LIMIT = 100


@bp.get("/bookings")
def list_bookings():
    """A page of the caller's bookings (as client, expert, or both), upcoming or past."""
    user = api_user()
    role = request.args.get("role")
    scope = request.args.get("scope", "upcoming")
    if role not in (None, *ROLES):
        raise invalid("role", "Use role=client or role=expert, or leave it out for both.")
    if scope not in SCOPES:
        raise invalid("scope", "Use scope=upcoming or scope=past.")
    limit = request.args.get("limit", str(LIST_LIMIT))
    if not (len(limit) <= 3 and limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= 500:
        raise invalid("limit", "Use a whole number from 1 to 500.")
    roles = (role,) if role else ROLES
    after = None
    if cursor := request.args.get("cursor"):
        try:
            after, backwards = read_cursor(cursor, roles, scope)
        except BadCursor as error:
            raise invalid("cursor", str(error)) from None
        if backwards:  # My Bookings' "newer" links read backwards; the API only onwards
            raise invalid("cursor", "This cursor reads backwards; use a next_cursor.")
    page = booking_page(
        user,
        roles=roles,
        scope=scope,
        now=datetime.now(UTC),
        limit=int(limit),
        after=after,
    )
    next_cursor = None
    if page.more and page.bookings:
        next_cursor = make_cursor(roles, scope, Position.of(page.bookings[-1]))
    return jsonify(bookings=[booking_payload(b) for b in page.bookings], next_cursor=next_cursor)


@bp.post("/bookings/<uid>/cancel")
def cancel(uid: str):
    """Cancel a booking; either participant may."""
    user = api_user()
    booking = db.session.scalar(sa.select(Booking).where(Booking.uid == uid[:32]))
    if booking is None or user.id not in (booking.expert_id, booking.client_id):
        raise ApiError(404, "not_found", "No such booking.")
    body = json_object() if request.get_data() else {}
    for name in body:
        if name != "reason":
            raise invalid(name, "Unknown field.", code="unknown_field")
    try:
        changed = cancel_booking(booking, reason=body.get("reason"), now=datetime.now(UTC))
    except BookingInputError as error:
        raise invalid(error.field, error.message) from None
    except BookingStateError as error:
        raise ApiError(409, "booking_over", str(error)) from None
    if changed:
        announce_slot_released(booking)
    return jsonify(booking_payload(booking))
