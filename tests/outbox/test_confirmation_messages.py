"""What a request, its confirmation and its decline say, and to whom: mails (through a real
local SMTP server), reminders, webhook bodies, calendar write-back and the calendar file."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer

from expertbook import reminders
from expertbook.calendars import writeback
from expertbook.extensions import db
from expertbook.ics import calendar_file
from expertbook.models import Booking, utcnow
from expertbook.outbox.events import booking_messages
from expertbook.outbox.models import OutboxMessage
from expertbook.webhooks import rows_for as webhook_rows
from expertbook.webhooks.endpoints import add_endpoint
from expertbook.webhooks.events import CANCELLED, CONFIRMED, DECLINED, EVENTS, REQUESTED
from tests.booking_fixtures import NOW, day_ahead
from tests.pending_bookings import pending_booking, requiring_confirmation
from tests.test_mail import calendar_part, deliver


@pytest.fixture
def request_(sync):
    """A guest's request for a session in two days, to be answered within 24 hours."""
    requiring_confirmation(sync, hours=24)
    booking, _token = pending_booking(sync, day_ahead(2, 10), now=NOW)
    return booking


def text_of(message) -> str:
    return next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()


def answered(booking: Booking, status: str, reason: str = "") -> Booking:
    booking.status = status
    booking.cancel_reason = reason
    db.session.commit()
    return booking


def test_a_request_tells_the_booker_it_waits_and_asks_the_expert(app, inbox, request_, coach):
    assert deliver(app, request_, "requested", inbox) == 2
    mails = {m["To"]: m for m in inbox.messages}
    guest, expert = mails[request_.email], mails[coach.email]
    for message in (guest, expert):
        assert not any(p.get_content_type() == "text/calendar" for p in message.walk())
    assert guest["Subject"].startswith("Request received: ")
    guest_text = text_of(guest)
    assert "confirms each booking personally" in guest_text
    assert request_.video_url not in guest_text
    assert "Ship it" not in guest_text  # the answers are the expert's to read
    assert expert["Subject"].startswith("Please confirm: ")
    expert_text = text_of(expert)
    assert "What is your goal?: Ship it" in expert_text
    assert "First session?: Yes" in expert_text
    links = [line.split(": ", 1)[1] for line in expert_text.splitlines()
             if line.startswith(("Confirm: ", "Decline: "))]  # fmt: skip
    prefix = f"http://testserver/bookings/{request_.uid}/"
    assert [link.startswith(prefix + action + "/") for link, action in
            zip(links, ("confirm", "decline"), strict=True)] == [True, True]  # fmt: skip
    token = links[0].rsplit("/", 1)[1]
    serializer = URLSafeTimedSerializer(app.secret_key, salt="expertbook.bookings.decide")
    uid, action, until = serializer.loads(token)
    assert (uid, action, until) == (request_.uid, "confirm", int(request_.confirm_by.timestamp()))


def test_a_confirmation_sends_both_the_invite_with_the_video_link(app, inbox, request_, coach):
    answered(request_, Booking.CONFIRMED)
    assert deliver(app, request_, "confirmed", inbox) == 2
    assert sorted(m["To"] for m in inbox.messages) == sorted([request_.email, coach.email])
    for message in inbox.messages:
        assert message["Subject"].startswith("Confirmed: ")
        part = calendar_part(message)
        assert part.get_param("method") == "REQUEST"
        assert "STATUS:CONFIRMED" in part.get_content()
        assert request_.video_url in text_of(message)


def test_a_decline_tells_the_booker_why_and_no_one_else(app, inbox, request_):
    answered(request_, Booking.DECLINED, "Fully booked that week, sorry.")
    assert deliver(app, request_, "declined", inbox) == 1
    (message,) = inbox.messages
    assert message["To"] == request_.email
    assert message["Subject"].startswith("Declined: ")
    assert not any(p.get_content_type() == "text/calendar" for p in message.walk())
    text = text_of(message)
    assert "Reason: Fully booked that week, sorry." in text
    assert request_.video_url not in text


def test_a_cancelled_request_still_tells_both(app, inbox, request_, coach):
    answered(request_, Booking.CANCELLED)
    assert deliver(app, request_, "cancelled", inbox) == 2
    assert sorted(m["To"] for m in inbox.messages) == sorted([request_.email, coach.email])


def reminder_rows(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["kind"] == OutboxMessage.REMINDER]


def test_reminders_wait_for_the_confirmation_and_go_with_a_decline(app, request_):
    assert reminder_rows(booking_messages(request_, "requested", now=NOW)) == []
    answered(request_, Booking.CONFIRMED)
    rows = reminder_rows(booking_messages(request_, "confirmed", now=NOW))
    assert len(rows) == 2 * len(request_.event_type.reminder_minutes or [1440, 60])
    db.session.commit()  # the reminders are pending now
    answered(request_, Booking.DECLINED)
    assert reminder_rows(booking_messages(request_, "declined", now=NOW)) == []
    db.session.commit()
    left = db.session.query(OutboxMessage).filter_by(
        booking_id=request_.id, kind=OutboxMessage.REMINDER, status=OutboxMessage.PENDING
    )
    assert left.count() == 0


@pytest.mark.parametrize(
    ("change", "status", "event"),
    [
        ("requested", Booking.PENDING, REQUESTED),
        ("confirmed", Booking.CONFIRMED, CONFIRMED),
        ("declined", Booking.DECLINED, DECLINED),
    ],
)
def test_each_answer_has_its_webhook_with_the_answers(app, request_, coach, change, status, event):
    assert {REQUESTED, CONFIRMED, DECLINED} <= set(EVENTS)
    app.config["ALLOW_PRIVATE_HOSTS"] = True
    url = "http://127.0.0.1:9/hooks"
    endpoint = add_endpoint(coach, url, [event], now=utcnow()).endpoint
    add_endpoint(coach, url + "/others", [e for e in EVENTS if e != event], now=utcnow())
    answered(request_, status)
    (row,) = webhook_rows(request_, change, now=NOW)
    assert row["endpoint_id"] == endpoint.id
    body = json.loads(row["payload"]["body"])
    assert body["event"] == event
    assert body["booking"]["status"] == status
    assert body["answers"] == [
        {"question": "What is your goal?", "answer": "Ship it"},
        {"question": "First session?", "answer": "Yes"},
    ]
    # Only a decline's (or a cancellation's) body says why.
    assert ("reason" in body) is (event == DECLINED)


@pytest.mark.parametrize(
    ("change", "status", "event"),
    [("declined", Booking.DECLINED, DECLINED), ("cancelled", Booking.CANCELLED, CANCELLED)],
)
def test_a_decline_and_a_cancellation_say_why(app, request_, coach, change, status, event):
    app.config["ALLOW_PRIVATE_HOSTS"] = True
    add_endpoint(coach, "http://127.0.0.1:9/hooks", [event], now=utcnow())
    answered(request_, status, "Away that week.")
    (row,) = webhook_rows(request_, change, now=NOW)
    assert json.loads(row["payload"]["body"])["reason"] == "Away that week."
    answered(request_, status, "")
    (row,) = webhook_rows(request_, change, now=NOW)
    assert json.loads(row["payload"]["body"])["reason"] == ""


def test_a_request_is_not_written_to_the_experts_calendar_until_confirmed(app, request_):
    assert writeback.rows_for(request_, "requested", now=NOW, receiving=True) == []
    for change in ("confirmed", "declined"):
        (row,) = writeback.rows_for(request_, change, now=NOW, receiving=True)
        assert row["event"] == change


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (Booking.PENDING, "TENTATIVE"),
        (Booking.CONFIRMED, "CONFIRMED"),
        (Booking.DECLINED, "CANCELLED"),
        (Booking.CANCELLED, "CANCELLED"),
    ],
)
def test_the_calendar_file_says_tentative_while_it_waits(app, request_, status, shown):
    answered(request_, status)
    assert f"STATUS:{shown}" in calendar_file([request_], "http://testserver").decode()


@pytest.mark.parametrize(
    "status", [Booking.PENDING, Booking.CONFIRMED, Booking.DECLINED, Booking.CANCELLED]
)
def test_the_calendar_file_has_the_video_link_only_once_confirmed(app, request_, status):
    answered(request_, status)
    text = calendar_file([request_], "http://testserver").decode().replace("\r\n ", "")
    shown = status == Booking.CONFIRMED
    assert (f"Join: {request_.video_url}" in text) is shown
    assert (f"LOCATION:{request_.video_url}" in text) is shown
    assert (f"URL:{request_.video_url}" in text) is shown


def test_a_request_moved_to_another_time_asks_the_expert_again(app, inbox, request_, coach):
    """A pending request the booker reschedules: the expert gets the request again (its
    answers, one-click links), not "Rescheduled ... waiting for you"; nobody gets a
    calendar part or the video link before the confirmation."""
    assert deliver(app, request_, "rescheduled", inbox) == 2
    mails = {m["To"]: m for m in inbox.messages}
    guest, expert = mails[request_.email], mails[coach.email]
    for message in (guest, expert):
        assert not any(p.get_content_type() == "text/calendar" for p in message.walk())
        assert request_.video_url not in text_of(message)
        assert "invite.ics" not in text_of(message)
    expert_text = text_of(expert)
    assert "has a new time; it waits for your answer" in expert_text
    assert f"Confirm: http://testserver/bookings/{request_.uid}/confirm/" in expert_text
    assert f"Decline: http://testserver/bookings/{request_.uid}/decline/" in expert_text
    assert "What is your goal?: Ship it" in expert_text
    assert "Waiting for" not in expert_text
    assert "Waiting for" in text_of(guest)  # the booker's: a new time, still to be confirmed


def test_no_reminder_is_sent_for_a_request(app, request_):
    message = OutboxMessage(payload={"start": request_.start_at.isoformat()})
    assert reminders.why_not_sent(request_, message, NOW - timedelta(days=1)) == (
        "the booking is pending"
    )
