"""The expert's answer from the request mail's one-click links (signed, single use,
expiring) and from the signed-in pages; how a request shows on My Bookings and its page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer

from expertbook.bookings.links import decision_url
from expertbook.extensions import db
from expertbook.models import Booking
from tests.booking_fixtures import NOW, day_ahead
from tests.pending_bookings import pending_booking, requiring_confirmation


@pytest.fixture
def request_(app, sync, make_user):
    """Ann's request (she is signed up) for a session in two days."""
    requiring_confirmation(sync, hours=24)
    ann = make_user("ann", name="Ann Client")
    booking, _token = pending_booking(sync, day_ahead(2, 10), now=NOW, client=ann)
    return booking


def link(booking: Booking, action: str) -> str:
    with_host = decision_url(booking, action)
    assert with_host.startswith("http://testserver/")
    return with_host.removeprefix("http://testserver")


def status_of(booking: Booking) -> str:
    return db.session.get(Booking, booking.id, populate_existing=True).status


def test_the_link_shows_the_request_and_changes_nothing_on_get(client, request_):
    response = client.get(link(request_, "confirm"))
    assert response.status_code == 200
    assert "Confirm this booking request?" in response.text
    assert "Ann Client" in response.text and "Confirm request" in response.text
    assert response.headers["Cache-Control"].startswith("no-store")
    assert status_of(request_) == Booking.PENDING


def test_the_confirm_link_works_once_without_signing_in(client, auth, request_):
    path, decline = link(request_, "confirm"), link(request_, "decline")
    response = auth.post(path)
    assert response.status_code == 200
    assert "Confirmed" in response.text
    assert status_of(request_) == Booking.CONFIRMED
    again = auth.post(path)
    assert "This request was already confirmed." in again.text
    assert "This request was already confirmed." in client.get(path).text
    declining = client.get(decline)
    assert "This request was already confirmed." in declining.text


def test_the_decline_link_takes_a_reason(client, auth, request_):
    path = link(request_, "decline")
    assert 'name="reason"' in client.get(path).text
    response = auth.post(path, {"reason": "Away that week."})
    assert response.status_code == 200 and "Declined" in response.text
    booking = db.session.get(Booking, request_.id, populate_existing=True)
    assert booking.status == Booking.DECLINED and booking.cancel_reason == "Away that week."
    assert "This request was already declined." in auth.post(path).text


def test_a_too_long_reason_is_refused_on_the_page(auth, request_):
    response = auth.post(link(request_, "decline"), {"reason": "x" * 2001})
    assert response.status_code == 422
    assert "at most 2000 characters" in response.text
    assert status_of(request_) == Booking.PENDING


def test_a_post_without_the_csrf_token_is_refused(client, request_):
    response = client.post(link(request_, "confirm"))
    assert response.status_code == 400
    assert status_of(request_) == Booking.PENDING


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(
            lambda path: path[:-3] + ("aaa" if path[-3:] != "aaa" else "bbb"), id="tampered"
        ),  # fmt: skip
        pytest.param(lambda path: path.replace("/confirm/", "/decline/"), id="wrong-action"),
        pytest.param(lambda path: path.rsplit("/", 1)[0] + "/not-a-token", id="made-up"),
    ],
)
def test_a_bad_link_is_a_clear_400(client, auth, request_, mangle):
    path = mangle(link(request_, "confirm"))
    response = client.get(path)
    assert response.status_code == 400
    assert "This link is not valid." in response.text
    assert auth.post(path, token_from="/auth/login").status_code == 400
    assert status_of(request_) == Booking.PENDING


def test_a_link_for_another_booking_is_400(client, request_, sync):
    other, _token = pending_booking(sync, day_ahead(3, 10), now=NOW, email="bob@example.com")
    token = link(other, "confirm").rsplit("/", 1)[1]
    response = client.get(f"/bookings/{request_.uid}/confirm/{token}")
    assert response.status_code == 400


def test_a_link_signed_with_another_key_is_400(app, client, request_):
    forged = URLSafeTimedSerializer("not the key", salt="expertbook.bookings.decide")
    token = forged.dumps([request_.uid, "confirm", int(request_.confirm_by.timestamp())])
    assert client.get(f"/bookings/{request_.uid}/confirm/{token}").status_code == 400


def test_an_expired_link_is_410(client, auth, request_):
    request_.confirm_by = datetime.now(UTC) - timedelta(minutes=1)
    db.session.commit()
    path = link(request_, "confirm")  # signed with the deadline it carries
    response = client.get(path)
    assert response.status_code == 410
    assert "expired" in response.text
    assert auth.post(path, token_from="/auth/login").status_code == 410
    assert status_of(request_) == Booking.PENDING


def test_an_unknown_booking_is_a_page_not_a_500(client, request_):
    token = link(request_, "confirm").rsplit("/", 1)[1]
    assert client.get(f"/bookings/{'z' * 40}/confirm/{token}").status_code == 400


# --- Signed in: My Bookings, the booking's page ----------------------------------------------


def test_the_booker_sees_it_waiting_and_never_the_answers(client, auth, request_):
    auth.login("ann")
    listing = client.get("/bookings").text
    assert request_.uid in listing
    assert "Waiting for" in listing and "to confirm" in listing
    page = client.get(f"/bookings/{request_.uid}").text
    assert "Waiting for" in page
    assert "Ship it" not in page and "What is your goal?" not in page
    assert "Confirm request" not in page
    assert request_.video_url not in page


def test_the_expert_sees_the_request_with_answers_and_buttons(client, auth, request_):
    auth.login("coach")
    listing = client.get("/bookings").text
    assert request_.uid in listing and "Request" in listing
    assert f"/bookings/{request_.uid}/confirm" in listing
    page = client.get(f"/bookings/{request_.uid}").text
    assert "What is your goal?" in page and "Ship it" in page
    assert "Confirm request" in page and "Decline request" in page


def test_the_expert_confirms_from_the_page(client, auth, request_):
    auth.login("coach")
    response = auth.post(
        f"/bookings/{request_.uid}/confirm", token_from=f"/bookings/{request_.uid}"
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/bookings/{request_.uid}"
    assert status_of(request_) == Booking.CONFIRMED
    again = auth.post(
        f"/bookings/{request_.uid}/confirm",
        token_from=f"/bookings/{request_.uid}",
        follow_redirects=True,
    )
    assert "This request was already confirmed." in again.text


def test_the_expert_declines_from_the_page_and_it_shows_declined(client, auth, request_):
    auth.login("coach")
    auth.post(
        f"/bookings/{request_.uid}/decline",
        {"reason": "Fully booked."},
        token_from=f"/bookings/{request_.uid}",
    )
    assert status_of(request_) == Booking.DECLINED
    auth.logout()
    auth.login("ann")
    page = client.get(f"/bookings/{request_.uid}").text
    assert "Declined" in page and "Fully booked." in page


@pytest.mark.parametrize("who", ["ann", "stranger"])
def test_only_the_expert_answers_from_the_pages(client, auth, request_, make_user, who):
    if who == "stranger":
        make_user("stranger", expert=True)
    auth.login(who)
    response = auth.post(f"/bookings/{request_.uid}/confirm", token_from="/profile")
    assert response.status_code == 404
    assert status_of(request_) == Booking.PENDING


def test_a_request_can_be_cancelled_by_its_booker(client, auth, request_):
    auth.login("ann")
    page = client.get(f"/bookings/{request_.uid}").text
    assert 'id="cancel"' in page
    auth.post(f"/bookings/{request_.uid}/cancel", token_from=f"/bookings/{request_.uid}")
    assert status_of(request_) == Booking.CANCELLED


@pytest.mark.parametrize(
    "target", ["/\t/evil.example/x", "//evil.example/x", "https://evil.example/x", "/\\evil"]
)
def test_a_button_never_sends_the_expert_off_the_site(client, auth, request_, target):
    """The button's `next` is followed only to a path of this site (as after signing in):
    a tab is dropped by URL parsers, so "/\t/evil.example" would be "//evil.example"."""
    auth.login("coach")
    page = f"/bookings/{request_.uid}"
    response = auth.post(f"{page}/confirm", {"next": target}, token_from=page)
    assert response.status_code == 302
    assert response.headers["Location"] == page
    assert status_of(request_) == Booking.CONFIRMED


def test_the_expert_declines_a_request_and_is_not_offered_to_cancel_it(client, auth, request_):
    """Cancelling would tell the booker "cancelled" instead of "declined", without a reason
    asked for as one: the expert's page and list offer Decline only, while it waits."""
    auth.login("coach")
    page = client.get(f"/bookings/{request_.uid}").text
    assert "Decline request" in page
    assert 'id="cancel"' not in page and "Cancel this session" not in page
    assert f"/bookings/{request_.uid}#cancel" not in client.get("/bookings").text
