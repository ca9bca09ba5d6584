"""The dashboard's requests waiting for the expert: listed first, with the answers and
Confirm / Decline buttons that come back to the dashboard."""

from __future__ import annotations

import pytest

from expertbook.extensions import db
from expertbook.models import Booking
from tests.booking_fixtures import NOW, day_ahead, insert_booking
from tests.pending_bookings import pending_booking, requiring_confirmation


@pytest.fixture
def request_(app, sync):
    requiring_confirmation(sync, hours=24)
    booking, _token = pending_booking(sync, day_ahead(2, 10), now=NOW)
    return booking


def test_requests_come_first_with_answers_and_buttons(client, auth, request_, sync):
    confirmed = insert_booking(sync, day_ahead(1, 9), name="Zed Confirmed")
    auth.login("coach")
    page = client.get("/dashboard/").text
    requests = page.index("Requests waiting for you")
    assert requests < page.index("Event types") < page.index("Upcoming bookings")
    section = page[requests : page.index("Event types")]
    assert request_.uid in section and confirmed.uid not in section
    assert "What is your goal?" in section and "Ship it" in section
    assert f"/bookings/{request_.uid}/confirm" in section
    assert f"/bookings/{request_.uid}/decline" in section
    upcoming = page[page.index("Upcoming bookings") :]
    assert "Zed Confirmed" in upcoming and "Ann Client" in upcoming  # pending holds its time


def test_no_requests_no_section(client, auth, coach, sync):
    auth.login("coach")
    assert "Requests waiting for you" not in client.get("/dashboard/").text


@pytest.mark.parametrize(("action", "status"), [("confirm", Booking.CONFIRMED),
                                                ("decline", Booking.DECLINED)])  # fmt: skip
def test_the_buttons_answer_and_come_back(client, auth, request_, action, status):
    auth.login("coach")
    response = auth.post(
        f"/bookings/{request_.uid}/{action}",
        {"next": "/dashboard/", "reason": "Sorry."},
        token_from="/dashboard/",
    )
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard/"
    assert db.session.get(Booking, request_.id, populate_existing=True).status == status
    page = client.get("/dashboard/").text
    assert "Requests waiting for you" not in page
    assert ("Confirmed:" if action == "confirm" else "Declined:") in page


def test_the_way_back_stays_on_this_site(client, auth, request_):
    auth.login("coach")
    response = auth.post(
        f"/bookings/{request_.uid}/confirm",
        {"next": "//evil.example/"},
        token_from="/dashboard/",
    )
    assert response.headers["Location"] == f"/bookings/{request_.uid}"
