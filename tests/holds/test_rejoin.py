"""A booking page whose socket (re)joins learns at once of the holds placed while it was
away: the server follows `joined` with a `slot_held` for each live hold of the expert."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from expertbook import realtime
from expertbook.availability import set_availability
from expertbook.extensions import db, socketio
from expertbook.models import Hold

from .conftest import iso, start_at


def events(sio):
    return [(event["name"], event["args"][0]) for event in sio.get_received()]


def test_a_page_that_reconnects_is_told_the_holds_placed_while_it_was_away(
    app, sync, hold_path, make_event_type
):
    other = make_event_type(sync.expert, slug="other", duration_minutes=60)
    page = socketio.test_client(app)
    page.emit("join", {"event_type_id": other.id})
    page.get_received()
    page.disconnect()
    body = app.test_client().post(hold_path, json={"start": iso(start_at())}).json
    assert body["hold_id"]

    page = socketio.test_client(app)  # the page's socket reconnects and joins again
    page.emit("join", {"event_type_id": other.id})
    got = events(page)
    assert [name for name, _ in got] == ["joined", "slot_held"]
    assert got[1][1] == {
        "event_type_id": other.id, "start": body["start"], "end": body["end"],
        "expires_at": body["expires_at"],
    }  # fmt: skip


def test_only_live_holds_are_told_and_only_to_the_joining_socket(app, sync, hold_path, watcher):
    live = app.test_client().post(hold_path, json={"start": iso(start_at(hour=12))}).json
    gone = (
        app.test_client()
        .post(
            hold_path,
            json={"start": iso(start_at(hour=14))},
            environ_base={"REMOTE_ADDR": "10.0.0.9"},
        )
        .json
    )
    db.session.execute(
        sa.update(Hold)
        .where(Hold.id == gone["hold_id"])
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()
    watcher.get_received()

    page = socketio.test_client(app)
    page.emit("join", {"event_type_id": sync.id})
    held = [payload for name, payload in events(page) if name == "slot_held"]
    assert [payload["start"] for payload in held] == [live["start"]]
    assert events(watcher) == []  # the room already knew: nobody else is told again


def test_a_join_without_holds_is_answered_as_before(app, sync):
    page = socketio.test_client(app)
    page.emit("join", {"event_type_id": sync.id})
    assert [name for name, _ in events(page)] == ["joined"]


def _hold(app, path, start, address):
    """A hold placed through the API by its own browser at `address`."""
    return (
        app.test_client()
        .post(path, json={"start": iso(start)}, environ_base={"REMOTE_ADDR": address})
        .json
    )


def _joined(app, event_type_id):
    page = socketio.test_client(app)
    page.emit("join", {"event_type_id": event_type_id})
    return events(page)


def test_another_experts_holds_are_not_told(app, sync, make_user, make_event_type):
    other = make_user("other-coach", expert=True)
    set_availability(other, "UTC", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    theirs = make_event_type(other, slug="theirs", duration_minutes=30)
    held = _hold(app, f"/api/v1/event-types/{theirs.id}/holds", start_at(), "10.0.0.7")
    assert held["hold_id"]

    assert [name for name, _ in _joined(app, sync.id)] == ["joined"]
    # Their own page is told of it: the hold is live.
    assert [name for name, _ in _joined(app, theirs.id)] == ["joined", "slot_held"]


def test_a_hold_whose_time_has_ended_is_not_told_though_not_expired(app, sync, hold_path):
    ended = _hold(app, hold_path, start_at(hour=12), "10.0.0.7")
    now = datetime.now(UTC)
    db.session.execute(
        sa.update(Hold)
        .where(Hold.id == ended["hold_id"])
        .values(start_at=now - timedelta(minutes=30), end_at=now)
    )
    db.session.commit()
    hold = db.session.get(Hold, ended["hold_id"])
    assert hold.expires_at > datetime.now(UTC)  # still live, its time gone

    assert [name for name, _ in _joined(app, sync.id)] == ["joined"]


def test_an_expired_hold_is_not_told(app, sync, hold_path):
    gone = _hold(app, hold_path, start_at(), "10.0.0.7")
    db.session.execute(
        sa.update(Hold)
        .where(Hold.id == gone["hold_id"])
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()

    assert [name for name, _ in _joined(app, sync.id)] == ["joined"]


def test_at_most_max_holds_on_join_are_told_soonest_first(app, sync, hold_path, monkeypatch):
    monkeypatch.setattr(realtime, "MAX_HOLDS_ON_JOIN", 2)
    starts = [
        _hold(app, hold_path, start_at(hour=hour), f"10.0.0.{hour}")["start"]
        for hour in (16, 12, 14)
    ]

    held = [payload["start"] for name, payload in _joined(app, sync.id) if name == "slot_held"]
    assert held == sorted(starts)[:2]
