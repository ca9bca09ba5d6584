"""Who may see a booking: its expert, its client, or the holder of its manage token."""

from __future__ import annotations

import hmac

import sqlalchemy as sa
from flask import abort, request
from flask_login import current_user

from ..extensions import db
from ..models import Booking, hash_token


def is_participant(booking: Booking) -> bool:
    return current_user.is_authenticated and current_user.id in (
        booking.expert_id,
        booking.client_id,
    )


def booking_or_404(uid: str) -> tuple[Booking, str | None]:
    """The booking `uid` if the caller may see it, with the manage token they used (if any).

    Anyone else gets 404, the same as for an unknown uid: nothing says it exists.
    """
    booking = None
    if 0 < len(uid) <= 32:
        booking = db.session.scalar(sa.select(Booking).where(Booking.uid == uid))
    if booking is None:
        abort(404)
    token = request.values.get("token") or None
    if token is not None and (
        len(token) > 100 or not hmac.compare_digest(hash_token(token), booking.manage_token_hash)
    ):
        token = None
    if token is None and not is_participant(booking):
        abort(404)
    return booking, token
