"""The outbox rows a booking change causes: one per subscribed endpoint of the booking's
expert, the body built once, as the API shows the booking."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from expertbook.bookings.payloads import booking_payload
from expertbook.extensions import db
from expertbook.models import utcnow
from expertbook.outbox.models import OutboxMessage
from expertbook.webhooks import rows_for
from expertbook.webhooks.events import CANCELLED, CREATED, RESCHEDULED, ping_row
from tests.booking_fixtures import day_ahead, insert_booking


@pytest.fixture
def booking(sync):
    return insert_booking(sync, day_ahead(2, 10))


@pytest.fixture
def statements(app):
    """The SQL statements run while the test reads `statements` (a list, appended to)."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(db.engine, "before_cursor_execute", record)


@pytest.mark.parametrize(
    ("change", "event", "wanted"),
    [
        ("booked", CREATED, {"all"}),
        ("rescheduled", RESCHEDULED, {"all", "moves"}),
        ("cancelled", CANCELLED, {"all", "cancels"}),
    ],
)
def test_one_row_per_endpoint_subscribed_to_the_event(
    booking, coach, make_user, make_endpoint, change, event, wanted
):
    endpoints = {
        "all": make_endpoint(coach, "http://127.0.0.1:9/all").endpoint,
        "moves": make_endpoint(coach, "http://127.0.0.1:9/moves", [RESCHEDULED]).endpoint,
        "cancels": make_endpoint(coach, "http://127.0.0.1:9/cancels", [CANCELLED]).endpoint,
    }
    stranger = make_user("stranger", expert=True)
    make_endpoint(stranger, "http://127.0.0.1:9/stranger")
    rows = rows_for(booking, change, now=utcnow())
    assert {row["endpoint_id"] for row in rows} == {endpoints[name].id for name in wanted}
    for row in rows:
        assert row["kind"] == OutboxMessage.WEBHOOK
        assert row["event"] == event
        assert row["booking_id"] == booking.id and row["expert_id"] == coach.id
        assert row["status"] == OutboxMessage.PENDING
    assert len({row["uid"] for row in rows}) == len(rows)


def test_the_body_is_the_api_booking_with_the_rows_id(app, booking, coach, make_endpoint):
    make_endpoint(coach, "http://127.0.0.1:9/hook")
    now = utcnow()
    [row] = rows_for(booking, "booked", now=now)
    body = json.loads(row["payload"]["body"])
    assert body["id"] == row["uid"]
    assert body["event"] == "booking.created"
    assert body["created_at"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")
    with app.test_request_context():
        assert body["booking"] == booking_payload(booking)
    assert body["booking"]["manage_url"].startswith(app.config["BASE_URL"] + "/bookings/")
    assert "token" not in body["booking"]["manage_url"]  # never the guest's key
    assert "token" not in body["booking"]["ics_url"]
    assert body["event_type"] == {
        "id": booking.event_type_id,
        "slug": "sync",
        "title": "Sync; call",
    }


def test_no_endpoints_cost_one_query_and_give_no_rows(booking, statements):
    assert booking.expert_id  # loaded, as inside the booking's transaction
    statements.clear()
    assert rows_for(booking, "booked", now=utcnow()) == []
    queries = [s for s in statements if s != "BEGIN"]  # SQLite's explicit BEGIN
    assert len(queries) == 1 and "FROM webhook_endpoint" in queries[0]


def test_unknown_changes_are_a_programming_error(booking):
    with pytest.raises(KeyError):
        rows_for(booking, "exploded", now=utcnow())


def test_rows_enqueue_and_keep_their_bytes(booking, coach, make_endpoint):
    from expertbook.outbox import enqueue

    make_endpoint(coach, "http://127.0.0.1:9/hook")
    rows = rows_for(booking, "cancelled", now=utcnow())
    enqueue(rows)
    db.session.commit()
    stored = db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.uid == rows[0]["uid"]))
    assert stored.payload["body"] == rows[0]["payload"]["body"]


def test_a_ping_names_the_webhook_and_no_booking(coach, make_endpoint):
    endpoint = make_endpoint(coach, "http://127.0.0.1:9/hook", [CANCELLED]).endpoint
    row = ping_row(endpoint, now=utcnow())
    body = json.loads(row["payload"]["body"])
    assert body["event"] == row["event"] == "ping" and body["id"] == row["uid"]
    assert body["webhook"] == {"id": endpoint.id, "url": endpoint.url, "events": [CANCELLED]}
    assert "booking" not in body and row["booking_id"] is None
