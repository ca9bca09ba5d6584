"""A guest's manage link is made again from the booking itself (its token is derived from
the uid with SECRET_KEY; only its hash is stored): a request keeps no copy of it anywhere
while it waits, and the confirmation mail and the reminders carry the very link the
booking's answer gave."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from expertbook import reminders
from expertbook.bookings.manage_links import derive_token, guest_manage_url
from expertbook.confirmation import confirm_booking, decline_booking
from expertbook.extensions import db
from expertbook.models import Booking, hash_token, utcnow
from expertbook.outbox.models import OutboxMessage
from expertbook.outbox.worker import load_handlers, run_pass
from tests.booking_fixtures import day_ahead
from tests.mail_inbox import text_of
from tests.pending_bookings import requiring_confirmation
from tests.test_mail import calendar_part


def request_as_guest(client, event_type) -> tuple[dict, Booking]:
    start = day_ahead(3, 10).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"start": start, "name": "Gus", "email": "gus@example.com"}
    response = client.post(f"/api/v1/event-types/{event_type.id}/bookings", json=body)
    assert response.status_code == 201, response.json
    answer = response.json
    return answer, db.session.scalar(sa.select(Booking).where(Booking.uid == answer["uid"]))


def rows_of(booking: Booking, kind: str) -> list[OutboxMessage]:
    query = sa.select(OutboxMessage).where(
        OutboxMessage.booking_id == booking.id, OutboxMessage.kind == kind
    )
    return list(db.session.scalars(query.execution_options(populate_existing=True)))


def test_a_waiting_request_keeps_no_copy_of_the_link(client, sync, inbox):
    requiring_confirmation(sync, questions=[])
    answer, booking = request_as_guest(client, sync)
    assert answer["status"] == "pending"
    assert rows_of(booking, OutboxMessage.REMINDER) == []  # no never-sent row keeps it
    load_handlers()
    run_pass(client.application)
    assert not any("manage_url" in m.payload for m in rows_of(booking, OutboxMessage.MAIL))
    # The booking alone makes the link its answer gave, and the link opens it.
    assert guest_manage_url(booking) == answer["manage_url"]
    assert booking.manage_token_hash == hash_token(derive_token(booking.uid))
    assert client.get(answer["manage_url"]).status_code == 200


def confirmed_mail(app, booking, coach, inbox):
    """Send what is waiting, confirm the request, and return the guest's confirmation mail."""
    load_handlers()
    run_pass(app)
    inbox.messages.clear()
    confirm_booking(booking, actor=coach, now=utcnow())
    run_pass(app)
    (mail,) = [m for m in inbox.to("gus@example.com") if m["Subject"].startswith("Confirmed: ")]
    return mail


def test_the_confirmation_mail_and_reminders_carry_the_same_link(app, client, sync, coach, inbox):
    requiring_confirmation(sync, questions=[])
    answer, booking = request_as_guest(client, sync)
    mail = confirmed_mail(app, booking, coach, inbox)
    assert answer["manage_url"] in text_of(mail)
    ics = calendar_part(mail).get_content().replace("\r\n ", "")
    assert f"Manage: {answer['manage_url']}" in ics.replace("\\n", "\n")
    guest_reminders = [
        m
        for m in rows_of(booking, OutboxMessage.REMINDER)
        if m.status == OutboxMessage.PENDING and m.payload["role"] == "client"
    ]
    assert guest_reminders
    built = reminders.reminder_mail(booking, guest_reminders[0], now=utcnow())
    assert answer["manage_url"] in text_of(built)


def test_a_declined_guest_hears_of_it_with_the_link(app, client, sync, coach, inbox):
    requiring_confirmation(sync, questions=[])
    answer, booking = request_as_guest(client, sync)
    decline_booking(booking, actor=coach, reason="No.", now=utcnow())
    load_handlers()
    run_pass(app)
    (mail,) = [m for m in inbox.to("gus@example.com") if m["Subject"].startswith("Declined: ")]
    assert answer["manage_url"] in text_of(mail)


def test_a_link_that_cannot_be_made_again_still_travels_in_the_outbox(
    app, client, sync, coach, inbox
):
    """A request made before tokens were derived: its random token's link is kept by the
    never-sent row earlier versions wrote, and the confirmation recovers it from there."""
    requiring_confirmation(sync, questions=[])
    _answer, booking = request_as_guest(client, sync)
    legacy = f"http://testserver/bookings/{booking.uid}?token=legacy-random-token"
    booking.manage_token_hash = hash_token("legacy-random-token")
    db.session.add(
        OutboxMessage(
            **reminders.message_row(
                OutboxMessage.REMINDER,
                now=utcnow(),
                due_at=booking.end_at + timedelta(hours=1),
                event=reminders.LINK_KEEPER,
                booking_id=booking.id,
                expert_id=booking.expert_id,
                payload={"role": "client", "to": booking.email, "manage_url": legacy},
            )
        )
    )
    db.session.commit()
    assert guest_manage_url(booking) is None
    mail = confirmed_mail(app, booking, coach, inbox)
    assert legacy in text_of(mail)
