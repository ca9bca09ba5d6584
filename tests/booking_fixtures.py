"""Booking fixtures shared by the booking, calendar-file, mail, API and dashboard tests."""

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from expertbook.availability import set_availability
from expertbook.booking import book_slot, check_request
from expertbook.extensions import db
from expertbook.models import Booking, EventType, hash_token

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def insert_booking(
    event_type: EventType,
    start: datetime,
    *,
    minutes: int | None = None,
    name: str = "Bob Client",
    status: str = Booking.CONFIRMED,
) -> Booking:
    """A committed booking row of `event_type`, written directly (no slot check), lasting its
    duration unless told otherwise."""
    booking = Booking(
        uid=secrets.token_hex(16),
        expert_id=event_type.expert_id,
        event_type=event_type,
        name=name,
        email="bob@example.com",
        start_at=start,
        end_at=start + timedelta(minutes=minutes or event_type.duration_minutes),
        status=status,
        manage_token_hash=hash_token(secrets.token_urlsafe(16)),
    )
    db.session.add(booking)
    db.session.commit()
    return booking


def day_ahead(days: int, hour: int, minute: int = 0) -> datetime:
    return (NOW + timedelta(days=days)).replace(hour=hour, minute=minute)


@pytest.fixture
def coach(make_user):
    user = make_user("coach", expert=True, name='Coach, "The" Ünïcode 🎉')
    set_availability(user, "UTC", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    return user


@pytest.fixture
def sync(coach, make_event_type):
    return make_event_type(coach, slug="sync", title="Sync; call", duration_minutes=30)


@pytest.fixture
def make_booking(sync):
    """Factory: make_booking(start, client=None, name=...) -> (Booking, guest token)."""

    def make(start: datetime, *, client=None, name="Ann, \"A\" Ånström", email="ann@example.com",
             notes="Bring notes, please; thanks", now=None):  # fmt: skip
        request = check_request(start, name, email, notes)
        result = book_slot(
            sync, request, client=client, now=now or NOW, respond=lambda b, t: {"token": t}
        )
        # The session's copy (book_slot's is in no session), as a test then re-reads it.
        return db.session.get(Booking, result.booking.id), result.response["token"]

    return make
