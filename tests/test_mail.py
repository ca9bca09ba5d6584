"""Notification mails through a real local SMTP server (aiosmtpd), delivered by the outbox."""

import pytest

from expertbook import mail
from expertbook.extensions import db
from expertbook.models import utcnow
from expertbook.outbox import enqueue
from expertbook.outbox.worker import load_handlers, run_pass
from tests.booking_fixtures import day_ahead
from tests.e2e.conftest import free_port


def calendar_part(message):
    return next(p for p in message.walk() if p.get_content_type() == "text/calendar")


def deliver(app, booking, kind, inbox=None):
    """Write `kind`'s mail rows for `booking` and run a worker pass over them (after the
    booking's own mails, which are then dropped from `inbox`)."""
    load_handlers()
    run_pass(app)
    if inbox is not None:
        inbox.messages.clear()
    enqueue(mail.rows_for(booking, kind, now=utcnow()))
    db.session.commit()
    db.session.info.clear()  # the pass below delivers them, not the next request
    return run_pass(app)


@pytest.mark.parametrize("kind, method", [("booked", "REQUEST"), ("rescheduled", "REQUEST"),
                                          ("cancelled", "CANCEL")])  # fmt: skip
def test_both_parties_get_the_invite(app, inbox, make_booking, coach, kind, method):
    booking, _ = make_booking(day_ahead(2, 10))
    assert deliver(app, booking, kind, inbox) == 2
    assert sorted(m["To"] for m in inbox.messages) == sorted([booking.email, coach.email])
    for message in inbox.messages:
        part = calendar_part(message)
        assert part.get_param("method") == method
        body = part.get_content()
        assert f"METHOD:{method}" in body and f"UID:{booking.uid}@testserver" in body
        assert message["Subject"].startswith(kind.capitalize())
        assert message["Message-ID"].endswith("@testserver>")
    assert len({m["Message-ID"] for m in inbox.messages}) == 2


def test_without_a_mail_server_each_mail_is_one_log_line(
    app, make_booking, coach, caplog, monkeypatch
):
    import logging

    # A migration test's logging.fileConfig (alembic) disables the loggers that exist then.
    monkeypatch.setattr(logging.getLogger("expertbook.mail"), "disabled", False)
    booking, _ = make_booking(day_ahead(2, 10))
    run_pass(app)  # the booking's own mails
    with caplog.at_level("INFO", logger="expertbook.mail"):
        deliver(app, booking, "cancelled")
    subject = mail.subject_of(booking, "cancelled")
    lines = [r.getMessage() for r in caplog.records if subject in r.getMessage()]
    assert sorted(lines) == sorted(
        [f"mail to={booking.email} subject={subject}", f"mail to={coach.email} subject={subject}"]
    )


def test_booking_through_the_api_sends_the_mails(inbox, client, sync):
    start = day_ahead(3, 9).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"start": start, "name": "Ann", "email": "ann@example.com"}
    response = client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body)
    assert response.status_code == 201
    assert {m["To"] for m in inbox.messages} == {"ann@example.com", "coach@example.com"}
    text = next(p for p in inbox.messages[0].walk() if p.get_content_type() == "text/plain")
    assert response.json["video_url"] in text.get_content()


def test_a_broken_mail_server_does_not_fail_the_booking(app, client, sync):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())  # nobody listens
    start = day_ahead(3, 9).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"start": start, "name": "Ann", "email": "ann@example.com"}
    response = client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body)
    assert response.status_code == 201


def test_the_guest_mail_carries_the_manage_link(inbox, client, sync):
    start = day_ahead(3, 11).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"start": start, "name": "Guest", "email": "guest@example.com"}
    answer = client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body).json
    guest = next(m for m in inbox.messages if m["To"] == "guest@example.com")
    text = next(p for p in guest.walk() if p.get_content_type() == "text/plain").get_content()
    assert answer["manage_url"] in text
    assert answer["manage_url"] in invite_description(guest)  # the invite links back too
    expert = next(m for m in inbox.messages if m["To"] == "coach@example.com")
    expert_text = next(p for p in expert.walk() if p.get_content_type() == "text/plain")
    assert "token=" not in expert_text.get_content()
    assert "token=" not in invite_description(expert)


def invite_description(message) -> str:
    import icalendar

    (event,) = icalendar.Calendar.from_ical(calendar_part(message).get_content()).walk("VEVENT")
    return str(event["DESCRIPTION"])
