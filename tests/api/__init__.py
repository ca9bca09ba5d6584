"""Helpers shared by the API tests: bearer headers and booking rows."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from expertbook.accounts import create_api_token
from expertbook.extensions import db
from expertbook.models import Booking, EventType, User


def bearer(user: User) -> dict[str, str]:
    """Headers with a fresh, committed API token of `user`."""
    token = create_api_token(user)
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def add_booking(
    event_type: EventType,
    start: datetime,
    minutes: int | None = None,
    status: str = Booking.CONFIRMED,
) -> Booking:
    """A committed booking row of `event_type`, lasting its duration unless told otherwise."""
    booking = Booking(
        uid=secrets.token_hex(16),
        expert_id=event_type.expert_id,
        event_type=event_type,
        name="Cleo Client",
        email="cleo@example.com",
        start_at=start,
        end_at=start + timedelta(minutes=minutes or event_type.duration_minutes),
        status=status,
        manage_token_hash="0" * 64,
    )
    db.session.add(booking)
    db.session.commit()
    return booking
