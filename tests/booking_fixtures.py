"""Booking fixtures shared by the booking, calendar-file and mail tests."""

from datetime import UTC, datetime, timedelta

import pytest

from expertbook.availability import set_availability
from expertbook.booking import book_slot, check_request
from expertbook.extensions import db

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


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
        return result.booking, result.response["token"]

    return make
