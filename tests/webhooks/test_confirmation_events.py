"""Requests reach webhooks too: booking.requested when made, then booking.confirmed or
booking.declined, each with the booker's answers; the API and the dashboard offer them."""

from __future__ import annotations

import json

import pytest

from expertbook.outbox.worker import run_pass
from tests.api import bearer
from tests.booking_fixtures import day_ahead
from tests.pending_bookings import requiring_confirmation

ANSWERS = [{"question": "What is your goal?", "answer": "Ship it"},
           {"question": "First session?", "answer": "Yes"}]  # fmt: skip


@pytest.fixture
def headers(coach):
    return bearer(coach)


def request_booking(client, event_type, hour: int) -> dict:
    answer = client.post(
        f"/api/v1/event-types/{event_type.id}/bookings",
        json={
            "start": day_ahead(3, hour).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "name": "Ann Guest",
            "email": "ann@example.com",
            "answers": {"goal": "Ship it", "first": True},
        },
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["status"] == "pending"
    return answer.json


@pytest.mark.parametrize(("action", "event"), [("confirm", "booking.confirmed"),
                                               ("decline", "booking.declined")])  # fmt: skip
def test_a_request_and_its_answer_each_reach_the_receiver(
    app, client, headers, sync, coach, receiver, make_endpoint, action, event
):
    requiring_confirmation(sync, hours=24)
    make_endpoint(coach, receiver.url + "/hook")
    made = request_booking(client, sync, 10)
    answered = client.post(f"/api/v1/bookings/{made['uid']}/{action}", json={}, headers=headers)
    assert answered.status_code == 200, answered.json
    run_pass(app)
    bodies = [json.loads(got.body) for got in receiver.wait_for(2)]
    assert [b["event"] for b in bodies] == ["booking.requested", event]
    assert [b["booking"]["status"] for b in bodies] == ["pending", answered.json["status"]]
    assert all(b["answers"] == ANSWERS for b in bodies)


def test_the_api_takes_the_new_events(client, headers, receiver, private_ok):
    events = ["booking.requested", "booking.confirmed", "booking.declined"]
    answer = client.post(
        "/api/v1/webhooks", json={"url": receiver.url + "/hook", "events": events}, headers=headers
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["events"] == events


def test_the_dashboard_form_offers_them(client, auth, coach):
    auth.login("coach")
    page = client.get("/dashboard/webhooks").text
    for event in ("booking.requested", "booking.confirmed", "booking.declined"):
        assert f'value="{event}"' in page
