"""The mails of a request that ends before it is confirmed: nobody ever got a calendar
invitation for it (neither the booker's "request received" nor the expert's request carries
one), so its cancellation or decline carries no calendar part either; a cancelled confirmed
booking still sends METHOD:CANCEL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from expertbook.accounts import create_api_token
from expertbook.booking import cancel_booking
from expertbook.confirmation import confirm_booking, decline_booking
from expertbook.extensions import db
from expertbook.models import Booking
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


@pytest.fixture
def guest_token(app, sync):
    """The guest's manage token of a request for a session in two days (made the same way
    as request_, which it stands beside: use one or the other)."""
    requiring_confirmation(sync, hours=24)
    _booking, token = pending_booking(sync, day_ahead(2, 10), now=NOW)
    return token


def cancel_as_expert(client, auth, booking, coach, token):
    """The expert calls the request off through the API, with their own token."""
    api_token = create_api_token(coach)
    db.session.commit()
    return client.post(
        f"/api/v1/bookings/{booking.uid}/cancel",
        json={"reason": "Plans changed."},
        headers={"Authorization": f"Bearer {api_token}"},
    ).status_code


def cancel_as_guest(client, auth, booking, coach, token):
    """The guest calls the request off from its manage link."""
    return auth.post(
        f"/bookings/{booking.uid}/cancel?token={token}",
        {"reason": ""},
        token_from=f"/bookings/{booking.uid}?token={token}",
    ).status_code


@pytest.mark.parametrize(
    ("cancel", "status"), [(cancel_as_guest, 302), (cancel_as_expert, 200)], ids=["guest", "expert"]
)
def test_a_cancelled_pending_request_sends_no_cancel(
    app, client, auth, inbox, sync, coach, guest_token, cancel, status
):
    booking = db.session.scalar(sa.select(Booking))
    assert booking.is_pending
    delivered(app, inbox, "")  # the request's own mails
    assert cancel(client, auth, booking, coach, guest_token) == status
    db.session.expire_all()
    assert booking.status == Booking.CANCELLED
    mails = delivered(app, inbox, "Cancelled: ")
    assert sorted(m["To"] for m in mails) == sorted([booking.email, coach.email])
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
