"""The guest's manage link (their only key to the booking) stays in the outbox only while a
message still has to carry it: gone from a row once it is sent, given up or cancelled."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from expertbook.booking import cancel_booking, reschedule_booking
from expertbook.extensions import db
from expertbook.models import Booking, utcnow
from expertbook.outbox import DeliveryError, OutboxMessage
from expertbook.outbox.claims import claim
from expertbook.outbox.recording import Policy, record_many
from tests.booking_fixtures import day_ahead
from tests.mail_inbox import text_of


def rows_of(booking_uid: str) -> list[OutboxMessage]:
    booking = db.session.scalar(sa.select(Booking).where(Booking.uid == booking_uid))
    query = sa.select(OutboxMessage).where(OutboxMessage.booking_id == booking.id)
    return list(db.session.scalars(query.execution_options(populate_existing=True)))


def with_link(rows: list[OutboxMessage]) -> list[tuple[str, str]]:
    return [(m.kind, m.status) for m in rows if "manage_url" in (m.payload or {})]


def book_as_guest(client, sync, days: int = 3) -> dict:
    start = day_ahead(days, 10).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"start": start, "name": "Gus", "email": "gus@example.com"}
    response = client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body)
    assert response.status_code == 201
    return response.json


def test_a_sent_mail_keeps_no_link_and_a_pending_reminder_keeps_it(client, sync, inbox):
    answer = book_as_guest(client, sync)  # its mails go before the answer (DELIVER_INLINE)
    (guest,) = inbox.to("gus@example.com")
    assert answer["manage_url"] in text_of(guest)
    rows = rows_of(answer["uid"])
    assert {(m.kind, m.status) for m in rows if m.kind == "mail"} == {("mail", "sent")}
    # Only the guest's day-before reminder still carries it: it is still to be sent.
    assert with_link(rows) == [("reminder", "pending")]


def test_a_reschedule_moves_the_link_to_the_new_reminders_and_a_cancel_drops_it(
    client, sync, inbox
):
    answer = book_as_guest(client, sync)
    booking = db.session.scalar(sa.select(Booking).where(Booking.uid == answer["uid"]))
    reschedule_booking(booking, booking.start_at + timedelta(hours=2), now=utcnow())
    rows = rows_of(answer["uid"])
    # The guest's mail about the new time (not sent yet) and their new reminder.
    assert sorted(with_link(rows)) == [("mail", "pending"), ("reminder", "pending")]
    (new,) = [m for m in rows if m.kind == "reminder" and "manage_url" in m.payload]
    assert new.payload["start"] == (booking.start_at).isoformat()
    assert new.payload["manage_url"] == answer["manage_url"]
    cancel_booking(booking, now=utcnow())
    rows = rows_of(answer["uid"])
    assert {m.status for m in rows if m.kind == "reminder"} == {"cancelled"}
    # Only the guest's mails still to be sent keep it; no reminder does.
    assert set(with_link(rows)) == {("mail", "pending")}


def test_the_guest_s_mail_after_the_expert_reschedules_has_the_manage_link(
    app, client, sync, inbox
):
    from expertbook.outbox.worker import load_handlers, run_pass

    answer = book_as_guest(client, sync)
    booking = db.session.scalar(sa.select(Booking).where(Booking.uid == answer["uid"]))
    # The expert moves it: no guest link at hand, only the one the reminders carry.
    reschedule_booking(booking, booking.start_at + timedelta(hours=2), now=utcnow())
    load_handlers()
    run_pass(app)
    booked, rescheduled = inbox.to("gus@example.com")
    assert rescheduled["Subject"].startswith("Rescheduled")
    assert answer["manage_url"] in text_of(rescheduled)
    # Sent: the link is gone from that mail's row, kept by the pending reminder only.
    assert with_link(rows_of(answer["uid"])) == [("reminder", "pending")]


def test_a_mail_given_up_keeps_no_link_and_one_to_retry_keeps_it(app, client, sync):
    app.config.update(DELIVER_INLINE=False)  # the test delivers by hand
    answer = book_as_guest(client, sync)
    now = utcnow()
    claimed = [m for m in claim(now, limit=10, lease=timedelta(minutes=5)) if m.kind == "mail"]
    guest = next(m for m in claimed if "manage_url" in m.payload)
    expert = next(m for m in claimed if m is not guest)
    retry = DeliveryError("The mail server could not be reached: refused")
    assert record_many([guest], [retry], now, Policy()) == ["pending"]
    assert ("mail", "pending") in with_link(rows_of(answer["uid"]))
    refused = DeliveryError("The mail server refused the mail (550 no such user)", permanent=True)
    assert record_many([guest, expert], [refused, 250], now, Policy()) == ["failed", "sent"]
    assert with_link(rows_of(answer["uid"])) == [("reminder", "pending")]


def test_a_batch_is_recorded_with_its_links_dropped_in_one_statement_a_fate(
    any_app, clock, add_messages
):
    link = {"role": "client", "manage_url": "http://testserver/bookings/x?token=t"}
    guests = add_messages(3, payload=link)
    experts = add_messages(2, payload={"role": "expert"})
    (given_up,) = add_messages(payload=link)
    claimed = {m.uid: m for m in claim(clock.now, limit=10, lease=timedelta(minutes=5))}
    messages = [claimed[uid] for uid in [*guests, *experts, given_up]]
    outcomes = [250] * 5 + [DeliveryError("550 no such user", permanent=True)]
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement.lstrip().split()[0].upper())

    sa.event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert record_many(messages, outcomes, clock.now, Policy()) == ["sent"] * 5 + ["failed"]
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", seen)
    # One UPDATE for the sent rows (links dropped in it), one for the row given up; no
    # statement of their own for the links, nor a SET LOCAL before them.
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["UPDATE", "UPDATE"]
    db.session.expire_all()
    rows = db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.uid.in_(claimed)))
    payloads = {m.uid: (m.status, m.payload) for m in rows}
    assert [payloads[uid] for uid in guests] == [("sent", {"role": "client"})] * 3
    assert [payloads[uid] for uid in experts] == [("sent", {"role": "expert"})] * 2
    assert payloads[given_up] == ("failed", {"role": "client"})
