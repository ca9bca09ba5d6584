"""Who may see a booking: its expert, its client, or the holder of its manage token."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

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


def booking_or_404(uid: str, *, to_change: bool = False) -> tuple[Booking, str | None]:
    """The booking `uid` if the caller may see it (or, `to_change`, change it), with the
    manage token they used (if any).

    Anyone else gets 404, the same as for an unknown uid: nothing says it exists. A manage
    token changes the booking only until it is over (403 after): the link lives on in mail
    boxes, so once the session has passed it keeps showing the booking and its calendar
    file, but no longer acts for anyone.
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
    participant = is_participant(booking)
    if token is None and not participant:
        abort(404)
    if to_change and not participant and booking.end_at <= datetime.now(UTC):
        abort(403, description="This session is over; its link no longer changes the booking.")
    return booking, token
