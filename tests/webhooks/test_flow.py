"""Bookings reach webhooks through the outbox and its worker: created, rescheduled and
cancelled, each once, in order; a failing receiver is retried until it recovers, with the
same delivery every time."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from expertbook.booking import reschedule_booking
from expertbook.extensions import db
from expertbook.models import Booking, utcnow
from expertbook.outbox import OutboxMessage
from expertbook.outbox.worker import run_pass
from tests.api import bearer
from tests.booking_fixtures import day_ahead
from tests.webhooks.receiver import Answer


@pytest.fixture
def headers(coach):
    return bearer(coach)


def z(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def book(client, event_type, start) -> dict:
    answer = client.post(
        f"/api/v1/event-types/{event_type.id}/bookings",
        json={"start": z(start), "name": "Ann Guest", "email": "ann@example.com"},
    )
    assert answer.status_code == 201, answer.json
    return answer.json


def webhook_rows() -> list[OutboxMessage]:
    query = sa.select(OutboxMessage).where(OutboxMessage.kind == OutboxMessage.WEBHOOK)
    return list(db.session.scalars(query.order_by(OutboxMessage.id)))


def test_a_booking_its_move_and_its_cancellation_each_reach_the_receiver(
    app, client, headers, sync, coach, receiver, make_endpoint
):
    make_endpoint(coach, receiver.url + "/hook")
    start, moved_to = day_ahead(3, 10), day_ahead(3, 14)
    booked = book(client, sync, start)  # delivered before the answer (DELIVER_INLINE)
    booking = db.session.scalar(sa.select(Booking).where(Booking.uid == booked["uid"]))
    reschedule_booking(booking, moved_to, now=utcnow())  # outside a request: the worker
    assert run_pass(app) >= 1
    cancelled = client.post(f"/api/v1/bookings/{booked['uid']}/cancel", json={}, headers=headers)
    assert cancelled.status_code == 200

    received = receiver.wait_for(3)
    bodies = [json.loads(got.body) for got in received]
    assert [b["event"] for b in bodies] == [
        "booking.created",
        "booking.rescheduled",
        "booking.cancelled",
    ]
    assert [got.headers["X-ExpertBook-Event"] for got in received] == [b["event"] for b in bodies]
    assert {b["booking"]["uid"] for b in bodies} == {booked["uid"]}
    assert (
        bodies[0]["booking"]["start"] == z(start) and bodies[0]["booking"]["status"] == "confirmed"
    )
    assert bodies[1]["booking"]["start"] == z(moved_to)
    assert bodies[2]["booking"]["status"] == "cancelled"
    assert bodies[0]["booking"]["ics_url"] == booked["ics_url"].split("?")[0]  # no guest token
    assert len({b["id"] for b in bodies}) == 3
    assert [m.status for m in webhook_rows()] == [OutboxMessage.SENT] * 3


def test_only_subscribed_events_are_sent(client, sync, coach, receiver, make_endpoint):
    make_endpoint(coach, receiver.url + "/cancellations", ["booking.cancelled"])
    book(client, sync, day_ahead(3, 10))
    assert webhook_rows() == [] and receiver.received == []


def test_a_failing_receiver_is_retried_until_it_recovers(
    app, client, headers, sync, coach, receiver, make_endpoint
):
    endpoint = make_endpoint(coach, receiver.url + "/hook").endpoint
    receiver.answer(Answer(500, b"database locked"), Answer(close=True))
    book(client, sync, day_ahead(3, 10))  # the first attempt: 500
    [message] = webhook_rows()
    assert message.status == OutboxMessage.PENDING and message.attempts == 1
    assert message.status_code == 500 and "database locked" in message.last_error
    assert message.due_at > utcnow()  # a pause before the next attempt

    assert run_pass(app) == 0  # not due yet
    later = utcnow()
    for hours in (1, 3):  # past each growing pause
        later += timedelta(hours=hours)
        run_pass(app, clock=lambda at=later: at)
    [message] = webhook_rows()  # the worker detached the one read before
    assert message.status == OutboxMessage.SENT and message.attempts == 3
    assert message.status_code == 200 and message.last_error == ""
    assert len(receiver.received) == 3
    assert len({got.body for got in receiver.received}) == 1
    assert {got.headers["X-ExpertBook-Delivery"] for got in receiver.received} == {message.uid}

    shown = client.get(f"/api/v1/webhooks/{endpoint.id}/deliveries", headers=headers).json
    [delivery] = shown["deliveries"]
    assert delivery["id"] == message.uid and delivery["status"] == "sent"
    assert delivery["attempts"] == 3 and delivery["status_code"] == 200
    assert delivery["delivered_at"] is not None
