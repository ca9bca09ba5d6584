"""Socket.IO handlers through Flask-SocketIO's test client (threading mode)."""

from datetime import UTC, datetime, timedelta

import pytest

from expertbook.availability import set_availability
from expertbook.extensions import db, socketio


@pytest.fixture
def event_type(make_user, make_event_type):
    expert = make_user("coach", expert=True)
    set_availability(expert, "UTC", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    return make_event_type(expert, duration_minutes=30)


def received(sio, name):
    return [event["args"][0] for event in sio.get_received() if event["name"] == name]


def joined(event_type) -> dict:
    """`joined` for the event type: its id and its expert's current schedule version."""
    db.session.refresh(event_type.expert)
    return {"event_type_id": event_type.id, "version": event_type.expert.schedule_version}


def test_join_acknowledges_and_enters_the_room(app, event_type):
    sio = socketio.test_client(app)
    sio.emit("join", {"event_type_id": event_type.id})
    assert received(sio, "joined") == [joined(event_type)]


@pytest.mark.parametrize(
    "payload",
    [None, "7", 7, [], {}, {"event_type_id": "1"}, {"event_type_id": True},
     {"event_type_id": -1}, {"event_type_id": 0}, {"event_type_id": 2**40},
     {"event_type_id": 1.5}, {"event_type_id": None}, {"event_type_id": "x" * 100_000}],
)  # fmt: skip
def test_bad_join_payloads_get_an_error_event(app, event_type, payload):
    sio = socketio.test_client(app)
    sio.emit("join", payload)
    errors = received(sio, "error")
    assert [e["code"] for e in errors] == ["invalid_payload"]
    assert sio.is_connected()


def test_unknown_or_inactive_event_type(app, event_type, make_event_type):
    inactive = make_event_type(event_type.expert, slug="off", active=False)
    sio = socketio.test_client(app)
    for event_type_id in (999, inactive.id):
        sio.emit("join", {"event_type_id": event_type_id})
    assert [e["code"] for e in received(sio, "error")] == ["unknown_event_type"] * 2
    assert sio.is_connected()


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_slot_taken_reaches_every_room_of_the_expert(app, event_type, make_event_type, make_user):
    other = make_event_type(event_type.expert, slug="other", duration_minutes=60)
    stranger = make_event_type(make_user("stranger", expert=True), slug="elsewhere")
    watchers = {}
    for et in (event_type, other, stranger):
        watchers[et.id] = socketio.test_client(app)
        watchers[et.id].emit("join", {"event_type_id": et.id})
        watchers[et.id].get_received()
    start = (datetime.now(UTC) + timedelta(days=2)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    response = app.test_client().post(
        f"/api/v1/event-types/{event_type.id}/bookings",
        json={"start": iso(start), "name": "Ann", "email": "ann@example.com"},
    )
    assert response.status_code == 201, response.json
    end = iso(start + timedelta(minutes=30))
    for et_id in (event_type.id, other.id):
        assert received(watchers[et_id], "slot_taken") == [
            {"event_type_id": et_id, "start": iso(start), "end": end}
        ]
    assert received(watchers[stranger.id], "slot_taken") == []


def test_leave_stops_the_events(app, event_type):
    sio = socketio.test_client(app)
    sio.emit("join", {"event_type_id": event_type.id})
    sio.emit("leave", {"event_type_id": event_type.id})
    sio.get_received()
    socketio.emit("slot_taken", {"x": 1}, to=f"event-type:{event_type.id}")
    assert received(sio, "slot_taken") == []


@pytest.mark.parametrize(
    "raw",
    ['42["join",', "2" + "[" * 30_000, '2{"event_type_id": 1}', "2[]", "2", "29", "9",
     "2" + '{"a":' * 30_000],
)  # fmt: skip
def test_an_unreadable_packet_gets_an_error_event_and_no_traceback(app, event_type, raw, caplog):
    sio = socketio.test_client(app)
    sio.get_received()
    # What the Engine.IO server hands over for every message (the test client's emit does too).
    assert socketio.server.eio.handlers["message"] is socketio.server._handle_eio_message
    socketio.server._handle_eio_message(sio.eio_sid, raw)
    assert [e["code"] for e in received(sio, "error")] == ["bad_packet"]
    assert "Traceback" not in caplog.text and "handler error" not in caplog.text
    assert sio.is_connected()
    sio.emit("join", {"event_type_id": event_type.id})  # and the connection still works
    assert received(sio, "joined") == [joined(event_type)]


def test_each_connection_has_a_message_budget(app, event_type, monkeypatch):
    from expertbook import realtime

    clock = [1000.0]
    monkeypatch.setattr(realtime.time, "monotonic", lambda: clock[0])
    sio, other = socketio.test_client(app), socketio.test_client(app)
    sio.get_received()
    for _ in range(realtime.MESSAGES_PER_SECOND + 10):
        sio.emit("leave", {"event_type_id": event_type.id})
    events = sio.get_received()
    assert sum(e["name"] == "left" for e in events) < realtime.MESSAGES_PER_SECOND
    assert [e["args"][0]["code"] for e in events if e["name"] == "error"] == ["rate_limited"]
    other.emit("join", {"event_type_id": event_type.id})  # another connection's own budget
    assert received(other, "joined") == [joined(event_type)]
    clock[0] += 1.5  # a new second, a new budget
    sio.emit("join", {"event_type_id": event_type.id})
    assert received(sio, "joined") == [joined(event_type)]
