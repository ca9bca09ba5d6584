"""API views: the expert's answer to a booking request (confirm, decline)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from flask import jsonify, request

from ..booking import BookingInputError
from ..bookings.payloads import booking_payload
from ..confirmation import NotPending, confirm_booking, decline_booking
from ..extensions import db
from ..models import Booking, User
from ..realtime import announce_slot_released
from . import bp
from .auth import api_user
from .errors import ApiError
from .inputs import invalid, json_object


def _request_of(uid: str) -> tuple[Booking, User]:
    """The booking `uid` and its expert, the caller. Someone who is not in it gets 404, as
    for an unknown uid; its booker 403 (they know it exists, but it is not theirs to answer).
    """
    user = api_user()
    booking = db.session.scalar(sa.select(Booking).where(Booking.uid == uid[:32]))
    if booking is None or user.id not in (booking.expert_id, booking.client_id):
        raise ApiError(404, "not_found", "No such booking.")
    if user.id != booking.expert_id:
        raise ApiError(403, "not_the_expert", "Only the expert confirms or declines a request.")
    return booking, user


def _body(allowed: tuple[str, ...]) -> dict:
    body = json_object() if request.get_data() else {}
    for name in body:
        if name not in allowed:
            raise invalid(name, "Unknown field.", code="unknown_field")
    return body


@bp.post("/bookings/<uid>/confirm")
def confirm(uid: str):
    """Confirm a pending booking (its expert only); 409 not_pending when it is not."""
    booking, expert = _request_of(uid)
    _body(())
    try:
        booking = confirm_booking(booking, actor=expert, now=datetime.now(UTC))
    except NotPending as error:
        raise ApiError(409, "not_pending", str(error)) from None
    return jsonify(booking_payload(booking))


@bp.post("/bookings/<uid>/decline")
def decline(uid: str):
    """Decline a pending booking (its expert only), with an optional reason for the booker;
    its time is free again."""
    booking, expert = _request_of(uid)
    body = _body(("reason",))
    try:
        booking = decline_booking(
            booking, actor=expert, reason=body.get("reason"), now=datetime.now(UTC)
        )
    except BookingInputError as error:
        raise invalid(error.field, error.message) from None
    except NotPending as error:
        raise ApiError(409, "not_pending", str(error)) from None
    announce_slot_released(booking)
    return jsonify(booking_payload(booking))
