"""Holds in real time: slot_held to every room of the expert, binding a hold to its socket,
and the sweeper announcing expired holds released."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from expertbook import holds, sweeper
from expertbook.extensions import db, socketio
from expertbook.models import Hold

from .conftest import iso, received, start_at


def test_slot_held_reaches_every_room_of_the_expert(
    app, sync, hold_path, make_event_type, make_user
):
    other = make_event_type(sync.expert, slug="other", duration_minutes=60)
    stranger = make_event_type(make_user("stranger", expert=True), slug="elsewhere")
    watchers = {}
    for et in (sync, other, stranger):
        watchers[et.id] = socketio.test_client(app)
        watchers[et.id].emit("join", {"event_type_id": et.id})
        watchers[et.id].get_received()
    body = app.test_client().post(hold_path, json={"start": iso(start_at())}).json
    for et_id in (sync.id, other.id):
        assert received(watchers[et_id], "slot_held") == [
            {"event_type_id": et_id, "start": body["start"], "end": body["end"],
             "expires_at": body["expires_at"]}
        ]  # fmt: skip
    assert received(watchers[stranger.id], "slot_held") == []


def expire_all_holds():
    db.session.execute(sa.update(Hold).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    db.session.commit()


def test_the_sweeper_deletes_expired_holds_and_announces_them(
    app, client, sync, hold_path, watcher
):
    body = client.post(hold_path, json={"start": iso(start_at())}).json
    kept = (
        app.test_client()
        .post(
            hold_path,
            json={"start": iso(start_at(hour=12))},
            environ_base={"REMOTE_ADDR": "10.0.0.9"},
        )
        .json
    )
    db.session.execute(
        sa.update(Hold)
        .where(Hold.id == body["hold_id"])
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()
    watcher.get_received()
    version = sync.expert.schedule_version
    sweeper.sweep_once(app)
    assert received(watcher, "slot_released") == [
        {"event_type_id": sync.id, "start": body["start"], "end": body["end"]}
    ]
    assert db.session.scalars(sa.select(Hold.id)).all() == [kept["hold_id"]]
    db.session.refresh(sync.expert)
    assert sync.expert.schedule_version > version
    sweeper.sweep_once(app)  # nothing more to say
    assert received(watcher, "slot_released") == []


def test_a_sweeper_error_is_logged_and_the_loop_goes_on(app, monkeypatch, caplog):
    def broken(now):
        raise RuntimeError("database away")

    monkeypatch.setattr(holds, "sweep_expired", broken)
    sweeper.sweep_once(app)
    assert "sweeper: sweep_holds failed" in caplog.text


def test_a_database_away_is_one_line_per_outage_not_a_traceback_every_pass(
    app, monkeypatch, caplog
):
    """The fault tests read the servers' logs for tracebacks: an outage is said once."""
    import logging

    import psycopg2
    from sqlalchemy.exc import OperationalError

    def refused(now):
        raise OperationalError("SELECT 1", {}, psycopg2.OperationalError("Connection refused"))

    caplog.set_level(logging.INFO, logger="expertbook.sweeper")
    monkeypatch.setattr(holds, "sweep_expired", refused)
    for _ in range(3):
        sweeper.sweep_once(app)
    assert "Traceback" not in caplog.text
    assert caplog.text.count("sweeper: database unavailable (OperationalError)") == 1
    monkeypatch.undo()
    sweeper.sweep_once(app)
    assert caplog.text.count("sweeper: database back") == 1


def hold_message(client, hold_path):
    return client.post(hold_path, json={"start": iso(start_at())}).json


def test_binding_a_hold_renews_it_and_the_socket_gone_shortens_it(app, client, sync, hold_path):
    body = hold_message(client, hold_path)
    db.session.execute(sa.update(Hold).values(expires_at=datetime.now(UTC) + timedelta(seconds=10)))
    db.session.commit()
    page = socketio.test_client(app, flask_test_client=client)
    page.emit("hold", {"hold_id": body["hold_id"], "hold_token": body["hold_token"]})
    [held] = received(page, "held")
    assert held["hold_id"] == body["hold_id"]
    assert datetime.fromisoformat(held["expires_at"]) - datetime.now(UTC) > timedelta(minutes=4)
    page.disconnect()
    db.session.expire_all()
    hold = db.session.get(Hold, body["hold_id"])
    left = hold.expires_at - datetime.now(UTC)
    # The production default: the end-to-end tests run their servers with a shorter grace.
    assert app.config["HOLD_DISCONNECT_GRACE_SECONDS"] == 30
    assert timedelta(seconds=25) < left <= timedelta(seconds=30)
    # The page comes back within the grace: bound again, renewed.
    again = socketio.test_client(app, flask_test_client=client)
    again.emit("hold", {"hold_id": body["hold_id"]})  # the browser session is the holder
    assert received(again, "held")[0]["hold_id"] == body["hold_id"]


def test_a_socket_gone_leaves_a_hold_its_page_bound_again_on_a_newer_socket(app, client, hold_path):
    body = hold_message(client, hold_path)
    first = socketio.test_client(app, flask_test_client=client)
    first.emit("hold", {"hold_id": body["hold_id"], "hold_token": body["hold_token"]})
    # The page reconnects (the old socket not yet seen gone) and binds the hold again.
    second = socketio.test_client(app, flask_test_client=client)
    second.emit("hold", {"hold_id": body["hold_id"], "hold_token": body["hold_token"]})
    [held] = received(second, "held")
    first.disconnect()
    db.session.expire_all()
    hold = db.session.get(Hold, body["hold_id"])
    assert iso(hold.expires_at) == iso(datetime.fromisoformat(held["expires_at"]))
    assert hold.expires_at - datetime.now(UTC) > timedelta(minutes=4)
    second.disconnect()  # the socket that bound it last: now the grace runs
    db.session.expire_all()
    left = db.session.get(Hold, body["hold_id"]).expires_at - datetime.now(UTC)
    assert left <= holds.disconnect_grace()


def test_binding_a_hold_tells_the_other_pages_its_new_expiry(app, client, hold_path, watcher):
    body = hold_message(client, hold_path)
    watcher.get_received()
    page = socketio.test_client(app, flask_test_client=client)
    page.emit("hold", {"hold_id": body["hold_id"], "hold_token": body["hold_token"]})
    [held] = received(page, "held")
    [announced] = received(watcher, "slot_held")
    assert announced["start"] == body["start"]
    assert announced["expires_at"] == held["expires_at"]


def test_a_hold_past_its_lifetime_cannot_be_bound(app, client, hold_path):
    body = hold_message(client, hold_path)
    db.session.execute(
        sa.update(Hold).values(created_at=datetime.now(UTC) - holds.HOLD_MAX_LIFETIME)
    )
    db.session.commit()
    page = socketio.test_client(app, flask_test_client=client)
    page.emit("hold", {"hold_id": body["hold_id"], "hold_token": body["hold_token"]})
    assert [e["code"] for e in received(page, "error")] == ["hold_expired"]


def test_a_hold_renewed_by_its_page_over_http_still_ends_with_its_socket(app, client, hold_path):
    body = hold_message(client, hold_path)
    page = socketio.test_client(app, flask_test_client=client)
    page.emit("hold", {"hold_id": body["hold_id"], "hold_token": body["hold_token"]})
    assert client.post(f"/api/v1/holds/{body['hold_id']}/renew").status_code == 200
    page.disconnect()
    db.session.expire_all()
    left = db.session.get(Hold, body["hold_id"]).expires_at - datetime.now(UTC)
    assert left <= holds.disconnect_grace()


def test_only_the_holder_can_bind_a_hold(app, client, hold_path):
    body = hold_message(client, hold_path)
    stranger = socketio.test_client(app)
    stranger.emit("hold", {"hold_id": body["hold_id"], "hold_token": "guess"})
    assert [e["code"] for e in received(stranger, "error")] == ["unknown_hold"]
    stranger.disconnect()
    db.session.expire_all()
    hold = db.session.get(Hold, body["hold_id"])
    assert hold.expires_at - datetime.now(UTC) > timedelta(minutes=4)


@pytest.mark.parametrize(
    ("payload", "code"),
    [(None, "invalid_payload"), ("x", "invalid_payload"), (7, "invalid_payload"),
     ([], "invalid_payload"), ({}, "invalid_payload"), ({"hold_id": 5}, "invalid_payload"),
     ({"hold_id": "z" * 32}, "invalid_payload"), ({"hold_id": "a" * 100_000}, "invalid_payload"),
     # A well-formed id with a junk token: nobody's hold, so no such hold.
     ({"hold_id": "a" * 32, "hold_token": ["x"]}, "unknown_hold"),
     ({"hold_id": "a" * 32}, "unknown_hold")],
)  # fmt: skip
def test_bad_hold_messages_get_an_error_event(app, payload, code):
    sio = socketio.test_client(app)
    sio.emit("hold", payload)
    assert [e["code"] for e in received(sio, "error")] == [code]
    assert sio.is_connected()


def test_a_lost_connection_is_noticed_within_20_seconds(app):
    """Engine.IO's heartbeat: a page gone without a close is seen gone within interval +
    timeout; then its hold's grace starts."""
    eio = socketio.server.eio
    assert eio.ping_interval + eio.ping_timeout <= 20
