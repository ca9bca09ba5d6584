"""The mails of a request that ends before it is confirmed: nobody ever got a calendar
invitation for it (neither the booker's "request received" nor the expert's request carries
one), so its cancellation or decline carries no calendar part either; a cancelled confirmed
booking still sends METHOD:CANCEL."""

from __future__ import annotations

import pytest

from expertbook.booking import cancel_booking
from expertbook.confirmation import confirm_booking, decline_booking
from expertbook.outbox.worker import load_handlers, run_pass
from tests.booking_fixtures import NOW, day_ahead
from tests.pending_bookings import pending_booking, requiring_confirmation
from tests.test_mail import calendar_part


def has_calendar(message) -> bool:
    return any(p.get_content_type() == "text/calendar" for p in message.walk())


def delivered(app, inbox, subject: str) -> list:
    """Run a worker pass; the mails delivered so far whose subject starts with `subject`."""
    load_handlers()
    run_pass(app)
    return [m for m in inbox.messages if m["Subject"].startswith(subject)]


@pytest.fixture
def request_(app, sync):
    """A guest's request for a session in two days."""
    requiring_confirmation(sync, hours=24)
    booking, _token = pending_booking(sync, day_ahead(2, 10), now=NOW)
    return booking


def test_a_request_carries_no_calendar_part_to_either_party(app, inbox, request_, coach):
    mails = delivered(app, inbox, "")
    assert sorted(m["To"] for m in mails) == sorted([request_.email, coach.email])
    assert not any(has_calendar(m) for m in mails)


@pytest.mark.parametrize("by_expert", [False, True])
def test_a_cancelled_pending_request_sends_no_cancel(app, inbox, request_, coach, by_expert):
    delivered(app, inbox, "")  # the request's own mails
    assert cancel_booking(request_, reason="Plans changed." if by_expert else "", now=NOW)
    mails = delivered(app, inbox, "Cancelled: ")
    assert sorted(m["To"] for m in mails) == sorted([request_.email, coach.email])
    for message in mails:
        assert not has_calendar(message)
        assert "invite.ics" not in str(message)


def test_a_declined_request_sends_no_calendar_part(app, inbox, request_, coach):
    decline_booking(request_, actor=coach, reason="Not that week.", now=NOW)
    (mail,) = delivered(app, inbox, "Declined: ")
    assert mail["To"] == request_.email and not has_calendar(mail)


def test_a_request_cancelled_after_its_confirmation_sends_cancel(app, inbox, request_, coach):
    confirm_booking(request_, actor=coach, now=NOW)
    assert cancel_booking(request_, now=NOW)
    mails = delivered(app, inbox, "Cancelled: ")
    assert len(mails) == 2
    for message in mails:
        assert calendar_part(message).get_param("method") == "CANCEL"
