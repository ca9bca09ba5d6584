"""Helpers shared by the reminder tests: an expert in Berlin, booking with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from expertbook.booking import book_slot, check_request
from expertbook.extensions import db
from expertbook.models import Booking, EventType, User
from expertbook.outbox import OutboxMessage

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*fields: int) -> datetime:
    """A Berlin wall-clock time, as an aware UTC instant."""
    return datetime(*fields, tzinfo=BERLIN).astimezone(UTC)


def book(
    event_type: EventType,
    start: datetime,
    *,
    now: datetime,
    client: User | None = None,
    timezone: str = "",
    email: str = "ann@example.com",
) -> tuple[Booking, str]:
    """Book `start` as of `now`, through the real operation; return the booking and its
    guest manage link (as the API answers it)."""
    request = check_request(start, "Ann Client", email, "", timezone)
    result = book_slot(
        event_type,
        request,
        client=client,
        now=now,
        respond=lambda b, token: {
            "manage_url": f"http://testserver/bookings/{b.uid}?token={token}"
        },
    )
    # The session's copy (book_slot's is in no session), as a test then re-reads it.
    return db.session.get(Booking, result.booking.id), result.response["manage_url"]


def reminders_of(booking: Booking, status: str | None = None) -> list[OutboxMessage]:
    """The booking's reminder messages, earliest due first, the client's before the expert's."""
    query = sa.select(OutboxMessage).where(
        OutboxMessage.booking_id == booking.id, OutboxMessage.kind == OutboxMessage.REMINDER
    )
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    rows = db.session.scalars(query.execution_options(populate_existing=True)).all()
    return sorted(rows, key=lambda m: (m.due_at, m.payload["role"] != "client"))
