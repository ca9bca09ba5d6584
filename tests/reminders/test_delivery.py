"""The reminder mail, sent by the outbox's "reminder" handler through a real SMTP server."""

import email
import email.policy
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from expertbook.booking import cancel_booking, reschedule_booking
from expertbook.extensions import db
from expertbook.models import Booking, utcnow
from expertbook.outbox import DeliveryError, OutboxMessage
from expertbook.outbox.recording import Policy
from expertbook.outbox.worker import run_pass
from expertbook.reminders import deliver_reminder, reminder_mail, starts_when
from tests.e2e.conftest import free_port
from tests.mail_inbox import text_of
from tests.reminders import BERLIN, book, reminders_of


def days_ahead(days: int, hour: int) -> datetime:
    """`hour`:00 in Berlin, `days` days from today."""
    day = datetime.now(BERLIN).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN).astimezone(UTC)


def row(booking: Booking, role: str, event: str = "1440") -> OutboxMessage:
    return next(m for m in reminders_of(booking) if m.payload["role"] == role and m.event == event)


def subject(mail) -> str:
    # Python's email folds a long Subject onto its next line; readers drop the fold's space.
    return mail["Subject"].strip()


def lines(mail) -> list[str]:
    return text_of(mail).splitlines()


def local(start: datetime, tz: str, fmt: str) -> str:
    return start.astimezone(ZoneInfo(tz)).strftime(fmt)


@pytest.mark.parametrize(
    ("start", "now", "said"),
    [
        # 10:00 in Berlin on Mon 26 Oct 2026, read the day before at 10:00 (CET already).
        ("2026-10-26T09:00Z", "2026-10-25T09:00Z", "tomorrow at 10:00 (Europe/Berlin)"),
        ("2026-10-26T09:00Z", "2026-10-26T08:00Z", "today at 10:00 (Europe/Berlin)"),
        ("2026-10-26T09:00Z", "2026-10-23T09:00Z", "on Mon 26 Oct at 10:00 (Europe/Berlin)"),
        # 23:30 in Berlin is already the next day in UTC: days count in the reader's zone.
        ("2026-06-01T21:30Z", "2026-05-31T21:30Z", "tomorrow at 23:30 (Europe/Berlin)"),
        ("2026-06-01T21:30Z", "2026-06-01T20:30Z", "today at 23:30 (Europe/Berlin)"),
        # The hour that happens twice says which one.
        ("2026-10-25T00:30Z", "2026-10-24T00:30Z", "tomorrow at 02:30 CEST (Europe/Berlin)"),
        ("2026-10-25T01:30Z", "2026-10-24T01:30Z", "tomorrow at 02:30 CET (Europe/Berlin)"),
    ],
)
def test_starts_when_names_the_day_the_time_and_the_zone(start, now, said):
    parse = datetime.fromisoformat
    assert starts_when(parse(start), "Europe/Berlin", parse(now)) == said


def test_the_guest_gets_it_in_their_zone_with_the_join_and_manage_links(
    app, expert, coaching, inbox
):
    start = days_ahead(5, 15)
    booking, link = book(coaching, start, now=utcnow(), timezone="America/New_York")
    message = row(booking, "client")
    assert deliver_reminder(message) == 250
    (mail,) = inbox.to("ann@example.com")
    when = f"{local(start, 'America/New_York', '%a %d %b at %H:%M')} (America/New_York)"
    assert subject(mail) == f"Reminder: Coaching with Berta Coach on {when}"
    assert mail["Message-ID"] == f"<{message.uid}@testserver>"
    text = text_of(mail)
    assert f"Join: {booking.video_url}" in text
    assert f"Manage, reschedule or cancel: {link}" in text
    assert local(start, "America/New_York", "%H:%M") in text
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert f'href="{booking.video_url}"' in html
    assert "(America/New_York)" in html


def test_the_expert_gets_it_in_their_zone_with_the_booking_page_and_no_token(
    app, expert, coaching, inbox
):
    start = days_ahead(5, 15)
    booking, _link = book(coaching, start, now=utcnow(), timezone="America/New_York")
    deliver_reminder(row(booking, "expert", "60"))
    (mail,) = inbox.to("berta@example.com")
    when = f"{local(start, 'Europe/Berlin', '%a %d %b at %H:%M')} (Europe/Berlin)"
    assert subject(mail) == f"Reminder: Coaching with Ann Client on {when}"
    text = text_of(mail)
    assert f"Manage, reschedule or cancel: http://testserver/bookings/{booking.uid}" in lines(mail)
    assert "token" not in text
    assert inbox.to("ann@example.com") == []


def test_a_signed_in_client_gets_their_profile_zone_and_the_booking_page(
    app, expert, coaching, make_user, inbox
):
    client = make_user("carl", timezone="Asia/Tokyo")
    start = days_ahead(5, 15)
    booking, _link = book(coaching, start, now=utcnow(), client=client, email=client.email)
    deliver_reminder(row(booking, "client"))
    (mail,) = inbox.to("carl@example.com")
    assert subject(mail).endswith(f"{local(start, 'Asia/Tokyo', '%H:%M')} (Asia/Tokyo)")
    assert f"Manage, reschedule or cancel: http://testserver/bookings/{booking.uid}" in lines(mail)


def test_a_guest_reminder_without_its_link_says_where_to_find_it(app, expert, coaching):
    booking, _link = book(coaching, days_ahead(5, 15), now=utcnow())
    message = row(booking, "client")
    message.payload = {k: v for k, v in message.payload.items() if k != "manage_url"}
    mail = reminder_mail(booking, message, now=utcnow())
    # As the reader's mail program sees it.
    read = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    text = read.get_body(preferencelist=("plain",)).get_content()
    assert "use the link in your booking confirmation mail" in text
    assert "token" not in text
    db.session.rollback()


def test_a_cancelled_booking_sends_nothing_and_says_why(app, expert, coaching, inbox, caplog):
    booking, _link = book(coaching, days_ahead(5, 15), now=utcnow())
    message = row(booking, "client")
    cancel_booking(booking, now=utcnow())
    with caplog.at_level(logging.INFO, logger="expertbook.reminders"):
        assert deliver_reminder(message) is None
    assert inbox.messages == []
    assert f"reminder {message.uid} of booking {booking.id} not sent: the booking is cancelled" in (
        caplog.text
    )


def test_a_moved_booking_sends_nothing_for_its_old_time(app, expert, coaching, inbox, caplog):
    start = days_ahead(5, 15)
    booking, _link = book(coaching, start, now=utcnow())
    old = row(booking, "expert")
    reschedule_booking(booking, start + timedelta(hours=2), now=utcnow())
    with caplog.at_level(logging.INFO, logger="expertbook.reminders"):
        deliver_reminder(old)
    assert inbox.messages == []
    assert "not sent: the booking moved to" in caplog.text
    # The new one goes out.
    new = next(m for m in reminders_of(booking, "pending") if m.payload["role"] == "expert")
    deliver_reminder(new)
    assert len(inbox.to("berta@example.com")) == 1


def test_a_reminder_late_past_the_start_sends_nothing(app, expert, coaching, inbox, caplog):
    booking, _link = book(coaching, days_ahead(5, 15), now=utcnow())
    message = row(booking, "client")
    started = utcnow() - timedelta(minutes=5)
    db.session.execute(
        sa.update(Booking)
        .where(Booking.id == booking.id)
        .values(start_at=started, end_at=started + timedelta(hours=1))
    )
    message.payload = {**message.payload, "start": started.isoformat()}
    db.session.commit()
    with caplog.at_level(logging.INFO, logger="expertbook.reminders"):
        deliver_reminder(message)
    assert inbox.messages == []
    assert "not sent: the session has already started" in caplog.text
    db.session.refresh(message)
    assert (message.status, message.last_error) == (
        OutboxMessage.CANCELLED,
        "not sent: the session has already started",
    )


def test_a_mail_server_that_is_down_is_a_delivery_error_to_retry(app, expert, coaching):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())  # nobody listens
    booking, _link = book(coaching, days_ahead(5, 15), now=utcnow())
    with pytest.raises(DeliveryError) as raised:
        deliver_reminder(row(booking, "client"))
    assert not raised.value.permanent


def test_the_worker_finds_the_handler():
    """In a fresh interpreter, as `flask worker` starts: its handlers include reminders."""
    code = (
        "from expertbook.outbox import HANDLERS; "
        "from expertbook.outbox.worker import load_handlers; load_handlers(); "
        "print(HANDLERS['reminder'].__module__, HANDLERS['reminder'].__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["expertbook.reminders", "deliver_reminder"]


def test_the_worker_sends_each_reminder_when_it_is_due(app, expert, coaching, inbox):
    start = days_ahead(5, 15)
    booking, _link = book(coaching, start, now=utcnow())
    policy = Policy(parallel=1)
    run_pass(app, policy=policy)  # the booking's own mails, due at once
    inbox.messages.clear()
    # A minute before the day-before reminders are due: nothing goes out.
    assert run_pass(app, clock=lambda: start - timedelta(minutes=1441), policy=policy) == 0
    assert run_pass(app, clock=lambda: start - timedelta(minutes=1439), policy=policy) == 2
    assert sorted(m["To"] for m in inbox.messages) == ["ann@example.com", "berta@example.com"]
    assert [m.status for m in reminders_of(booking)] == ["sent", "sent", "pending", "pending"]
    assert run_pass(app, clock=lambda: start - timedelta(minutes=30), policy=policy) == 2
    assert len(inbox.messages) == 4


@pytest.mark.parametrize("start", [None, "soon", 5])
def test_a_row_that_does_not_say_its_start_sends_nothing(app, expert, coaching, inbox, start):
    booking, _link = book(coaching, days_ahead(5, 15), now=utcnow())
    message = row(booking, "client")
    message.payload = {**message.payload, "start": start}
    db.session.commit()
    deliver_reminder(message)
    assert inbox.messages == []
    db.session.refresh(message)
    assert message.status == OutboxMessage.CANCELLED
    assert message.last_error.startswith("not sent: the booking moved to ")
