"""POST /api/v1/bookings/<uid>/confirm and /decline: the expert answers a booking request."""

from __future__ import annotations

import pytest

from expertbook.accounts import create_api_token
from expertbook.extensions import db
from expertbook.models import Booking
from tests.booking_fixtures import NOW, day_ahead
from tests.pending_bookings import pending_booking, requiring_confirmation


@pytest.fixture
def request_(app, sync, make_user):
    """Ann's request (she is signed up) for a session in two days."""
    requiring_confirmation(sync, hours=24)
    ann = make_user("ann")
    booking, _token = pending_booking(sync, day_ahead(2, 10), now=NOW, client=ann)
    return booking


def bearer(user) -> dict[str, str]:
    token = create_api_token(user)
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def answer(client, uid, action, headers, **kwargs):
    return client.post(f"/api/v1/bookings/{uid}/{action}", headers=headers, **kwargs)


def test_the_expert_confirms_and_a_second_call_is_409(client, request_, coach):
    headers = bearer(coach)
    response = answer(client, request_.uid, "confirm", headers)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "confirmed"
    assert response.json["uid"] == request_.uid
    again = answer(client, request_.uid, "confirm", headers)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "not_pending"
    assert "already confirmed" in again.json["error"]["message"]
    assert answer(client, request_.uid, "decline", headers).status_code == 409


def test_the_expert_declines_with_a_reason(client, request_, coach):
    response = answer(client, request_.uid, "decline", bearer(coach), json={"reason": "Away."})
    assert response.status_code == 200, response.json
    assert response.json["status"] == "declined"
    booking = db.session.get(Booking, request_.id, populate_existing=True)
    assert booking.cancel_reason == "Away."


def test_an_empty_decline_needs_no_body(client, request_, coach):
    response = answer(client, request_.uid, "decline", bearer(coach))
    assert response.status_code == 200 and response.json["status"] == "declined"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x" * 2001}, "reason"),
        ({"reason": 7}, "reason"),
        ({"reason": ["no"]}, "reason"),
        # Not text, though "no reason" to a quick truthiness test.
        ({"reason": False}, "reason"),
        ({"reason": 0}, "reason"),
        ({"reason": []}, "reason"),
        ({"reason": {}}, "reason"),
        ({"why": "no"}, "why"),
    ],
)
def test_a_bad_reason_is_422(client, request_, coach, body, field):
    response = answer(client, request_.uid, "decline", bearer(coach), json=body)
    assert response.status_code == 422
    assert response.json["error"]["field"] == field
    assert db.session.get(Booking, request_.id, populate_existing=True).is_pending


def test_confirm_takes_no_fields(client, request_, coach):
    response = answer(client, request_.uid, "confirm", bearer(coach), json={"reason": "x"})
    assert response.status_code == 422


@pytest.mark.parametrize("action", ["confirm", "decline"])
def test_someone_elses_booking_is_404_and_its_booker_403(client, request_, make_user, action):
    stranger = make_user("stranger", expert=True)
    response = answer(client, request_.uid, action, bearer(stranger))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert answer(client, "nosuchuid", action, bearer(stranger)).status_code == 404
    response = answer(client, request_.uid, action, bearer(request_.client))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "not_the_expert"
    assert answer(client, request_.uid, action, {}).status_code == 401
    assert db.session.get(Booking, request_.id, populate_existing=True).is_pending


def test_a_confirmed_booking_is_not_pending(client, make_booking, coach):
    booking, _token = make_booking(day_ahead(3, 9))
    response = answer(client, booking.uid, "confirm", bearer(coach))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "not_pending"


def test_a_booking_of_an_event_type_requiring_confirmation_answers_pending(client, sync):
    requiring_confirmation(sync, hours=24)
    body = {
        "start": day_ahead(2, 11).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "name": "Bob",
        "email": "bob@example.com",
        "answers": {"goal": "Learn"},
    }
    response = client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "pending"
    assert response.json["video_url"] == ""  # the key is there; the link comes once confirmed


def test_the_video_link_is_given_once_confirmed_and_never_after_a_decline(
    client, request_, sync, coach
):
    """The booker's listing, and the expert's answers: a request, pending or declined, has
    no video link; a confirmed one has it."""
    other, _token = pending_booking(
        sync, day_ahead(3, 10), now=NOW, client=request_.client, email="ann@example.com"
    )
    booker = bearer(request_.client)
    listed = client.get("/api/v1/bookings", headers=booker).json["bookings"]
    assert {b["uid"]: b["video_url"] for b in listed} == {request_.uid: "", other.uid: ""}
    expert = bearer(coach)
    confirmed = answer(client, request_.uid, "confirm", expert).json
    assert confirmed["video_url"] == request_.video_url != ""
    declined = answer(client, other.uid, "decline", expert).json
    assert declined["status"] == "declined" and declined["video_url"] == ""
    listed = client.get("/api/v1/bookings", headers=booker).json["bookings"]
    shown = {b["uid"]: b["video_url"] for b in listed}
    assert shown[request_.uid] == request_.video_url and shown.get(other.uid, "") == ""
