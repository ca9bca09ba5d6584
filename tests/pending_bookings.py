"""Bookings that wait for the expert, for the confirmation tests: made through the real
booking operation on an event type that requires confirmation."""

from __future__ import annotations

from datetime import datetime

from expertbook.booking import book_slot, check_request
from expertbook.extensions import db
from expertbook.models import Booking, EventType, User

QUESTIONS = [
    {"id": "goal", "label": "What is your goal?", "kind": "text", "required": True},
    {"id": "first", "label": "First session?", "kind": "checkbox", "required": False},
]


def requiring_confirmation(
    event_type: EventType, *, hours: int | None = None, questions: list | None = None
) -> EventType:
    """`event_type`, now requiring the expert's confirmation (within `hours`, if given)
    and asking `questions` (QUESTIONS unless told)."""
    event_type.requires_confirmation = True
    event_type.confirm_within_hours = hours
    event_type.questions = QUESTIONS if questions is None else questions
    db.session.commit()
    return event_type


def pending_booking(
    event_type: EventType,
    start: datetime,
    *,
    now: datetime,
    client: User | None = None,
    email: str = "ann@example.com",
    answers: dict | None = None,
) -> tuple[Booking, str]:
    """A request for `start` of `event_type` (which requires confirmation), booked at `now`:
    the booking and its guest token."""
    answers = {"goal": "Ship it", "first": True} if answers is None else answers
    request = check_request(start, "Ann Client", email, "", answers=answers)
    result = book_slot(
        event_type, request, client=client, now=now, respond=lambda b, t: {"token": t}
    )
    # The session's copy (book_slot's is in no session), as a test then re-reads it.
    return db.session.get(Booking, result.booking.id), result.response["token"]
