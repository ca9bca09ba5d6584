"""Reminders of a request: none while it waits for the expert, made when it is confirmed
(as for a booking made confirmed), none after a decline."""

from __future__ import annotations

from datetime import timedelta

from expertbook import reminders
from expertbook.confirmation import confirm_booking, decline_booking, decline_overdue
from expertbook.outbox import OutboxMessage
from tests.pending_bookings import pending_booking, requiring_confirmation
from tests.reminders import berlin, book, reminders_of

START = berlin(2026, 6, 1, 15, 0)
NOW = START - timedelta(days=3)


def test_a_request_has_no_reminders_until_it_is_confirmed(any_app, expert, coaching):
    requiring_confirmation(coaching, hours=48)
    booking, _token = pending_booking(coaching, START, now=NOW)
    assert reminders_of(booking) == []
    confirm_booking(booking, actor=expert, now=NOW + timedelta(hours=1))
    rows = reminders_of(booking, OutboxMessage.PENDING)
    assert [(m.event, m.payload["role"]) for m in rows] == [
        ("1440", "client"), ("1440", "expert"), ("60", "client"), ("60", "expert"),
    ]  # fmt: skip
    assert {m.due_at for m in rows} == {START - timedelta(days=1), START - timedelta(hours=1)}


def test_a_declined_request_has_none(any_app, expert, coaching):
    requiring_confirmation(coaching, hours=48)
    first, _token = pending_booking(coaching, START, now=NOW)
    second, _token = pending_booking(coaching, START + timedelta(hours=2), now=NOW)
    decline_booking(first, actor=expert, reason="No.", now=NOW)
    assert len(decline_overdue(NOW + timedelta(hours=48))) == 1
    assert reminders_of(first) == [] and reminders_of(second) == []


def mail_rows(booking, event: str) -> list[OutboxMessage]:
    import sqlalchemy as sa

    from expertbook.extensions import db

    return db.session.scalars(
        sa.select(OutboxMessage).where(
            OutboxMessage.booking_id == booking.id,
            OutboxMessage.kind == OutboxMessage.MAIL,
            OutboxMessage.event == event,
        )
    ).all()


def test_a_guests_request_keeps_no_link_row_and_its_answer_makes_the_link(
    any_app, expert, coaching
):
    """The guest's link is made again from the booking (bookings/manage_links.py): no
    row is written only to keep it."""
    requiring_confirmation(coaching, hours=48, questions=[])
    booking, link = book(coaching, START, now=NOW)  # a guest: the link is their only key
    assert booking.is_pending and reminders_of(booking) == []
    confirm_booking(booking, actor=expert, now=NOW)
    (client_mail,) = [m for m in mail_rows(booking, "confirmed") if m.payload["role"] == "client"]
    assert client_mail.payload["manage_url"] == link
    rows = reminders_of(booking, OutboxMessage.PENDING)
    assert rows and all(m.event != reminders.LINK_KEEPER for m in rows)
    assert [m.payload.get("manage_url") for m in rows if m.payload["role"] == "client"] == [
        link,
        link,
    ]


def test_a_guest_hears_of_a_decline_with_their_link(any_app, expert, coaching):
    requiring_confirmation(coaching, hours=48, questions=[])
    booking, link = book(coaching, START, now=NOW)
    decline_booking(booking, actor=expert, reason="No.", now=NOW)
    (client_mail,) = mail_rows(booking, "declined")
    assert client_mail.payload["manage_url"] == link
    assert reminders_of(booking, OutboxMessage.PENDING) == []
