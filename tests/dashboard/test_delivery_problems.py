"""The dashboard lists the expert's messages that were given up: what, to whom, why, since."""

from datetime import timedelta
from html import escape
from zoneinfo import ZoneInfo

import pytest

from expertbook.extensions import db
from expertbook.models import utcnow
from expertbook.outbox import OutboxMessage, WebhookEndpoint, message_row
from tests.booking_fixtures import insert_booking
from tests.dashboard import assert_csp_clean, sign_in_expert


@pytest.fixture
def expert(make_user, auth):
    return sign_in_expert(make_user, auth, timezone="Europe/Berlin")


def failed(expert, kind=OutboxMessage.MAIL, *, age=timedelta(hours=30), **fields):
    now = utcnow() - age
    values = message_row(kind, now=now, expert_id=expert.id, payload=fields.pop("payload", {}))
    values.update({"status": OutboxMessage.FAILED, "attempts": 31, **fields})
    row = OutboxMessage(**values)
    db.session.add(row)
    db.session.commit()
    return row


def section(page: str) -> str:
    start = page.index('aria-labelledby="delivery-problems-heading"')
    return page[start : page.index("</section>", start)]


def test_no_problems_no_section(client, expert):
    page = client.get("/dashboard/").text
    assert "Delivery problems" not in page


def test_failed_messages_are_listed_with_what_whom_why_and_since(
    client, expert, make_event_type, make_user
):
    booking = insert_booking(make_event_type(expert), utcnow() + timedelta(days=2))
    endpoint = WebhookEndpoint(expert_id=expert.id, url="https://hooks.example.com/in", secret="x")
    db.session.add(endpoint)
    db.session.commit()
    reminder = failed(
        expert,
        OutboxMessage.REMINDER,
        event="60",
        booking_id=booking.id,
        payload={"role": "client", "to": "bob@example.com"},
        last_error="The mail server refused the mail (550 <no such user>)",
    )
    failed(
        expert,
        OutboxMessage.MAIL,
        event="booked",
        booking_id=booking.id,
        payload={"role": "expert"},
        last_error="The mail server could not be reached: timed out",
    )
    failed(
        expert,
        OutboxMessage.WEBHOOK,
        event="booking.created",
        endpoint_id=endpoint.id,
        last_error="HTTP 500",
        attempts=1,
    )
    # Not listed: another expert's, one given up long ago, one still being retried.
    failed(make_user("otto", expert=True), last_error="otto's problem")
    failed(expert, age=timedelta(days=40), last_error="long ago")
    failed(expert, status=OutboxMessage.PENDING, last_error="retrying")

    page = client.get("/dashboard/").text
    listed = section(page)
    assert "Reminder mail (1 hour before)" in listed
    assert "bob@example.com" in listed
    assert escape("The mail server refused the mail (550 <no such user>)") in listed
    assert "Booking confirmation mail" in listed and "ann@example.com" in listed
    assert "Webhook booking.created" in listed and "https://hooks.example.com/in" in listed
    assert "HTTP 500" in listed and "(1 attempt)" in listed and "(31 attempts)" in listed
    assert listed.count(f'href="/bookings/{booking.uid}"') == 2
    assert 'href="/dashboard/webhooks"' in listed
    since = reminder.created_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert f'<time datetime="{reminder.created_at:%Y-%m-%dT%H:%M:%S}Z">' in listed
    assert f"{since:%H:%M}" in listed
    for absent in ("otto's problem", "long ago", "retrying"):
        assert escape(absent) not in page
    assert_csp_clean(page)
