"""The holds API: place, replace, release and renew, through the Flask test client."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from expertbook import holds
from expertbook.extensions import client_network, db
from expertbook.models import Hold
from tests.booking_fixtures import insert_booking

from .conftest import iso, received, start_at


def live_holds() -> list[Hold]:
    db.session.expire_all()
    now = datetime.now(UTC)
    return db.session.scalars(sa.select(Hold).where(Hold.expires_at > now)).all()


def test_place_a_hold(app, client, sync, hold_path):
    start = start_at()
    before = sync.expert.schedule_version
    response = client.post(hold_path, json={"start": iso(start)})
    assert response.status_code == 201, response.json
    body = response.json
    assert set(body) == {"hold_id", "start", "end", "expires_at", "hold_token"}
    assert body["start"] == iso(start) and body["end"] == iso(start + timedelta(minutes=30))
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(minutes=4) < expires - datetime.now(UTC) <= holds.HOLD_TTL
    [hold] = live_holds()
    assert hold.id == body["hold_id"] and hold.token_hash != body["hold_token"]
    assert response.headers["Cache-Control"] == "no-store"
    db.session.refresh(sync.expert)
    assert sync.expert.schedule_version > before


def test_another_client_is_told_slot_held(client, app, sync, hold_path, make_event_type):
    long = make_event_type(sync.expert, slug="long", duration_minutes=60)
    start = start_at(minute=30)
    assert client.post(hold_path, json={"start": iso(start)}).status_code == 201
    other = app.test_client()
    # Another address, another session: the time is held; a neighbouring time is not.
    response = other.post(
        hold_path, json={"start": iso(start)}, environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert response.status_code == 409
    error = response.json["error"]
    assert error["code"] == "slot_held"
    assert 240 < error["retry_after"] <= 300
    assert response.headers["Retry-After"] == str(error["retry_after"])
    # Another event type of the expert, whose hour would overlap it.
    overlapping = other.post(
        f"/api/v1/event-types/{long.id}/holds",
        json={"start": iso(start - timedelta(minutes=30))},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert overlapping.json["error"]["code"] == "slot_held"
    after = other.post(
        hold_path,
        json={"start": iso(start + timedelta(minutes=30))},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert after.status_code == 201


def test_the_same_address_cannot_take_another_sessions_held_time(client, app, sync, hold_path):
    start = start_at()
    assert client.post(hold_path, json={"start": iso(start)}).status_code == 201
    response = app.test_client().post(hold_path, json={"start": iso(start)})
    assert response.json["error"]["code"] == "slot_held"
    assert len(live_holds()) == 1


def test_buffers_of_the_held_type_block_too(client, app, sync, hold_path, make_event_type):
    padded = make_event_type(sync.expert, slug="padded", buffer_after_minutes=30)
    start = start_at()
    response = client.post(f"/api/v1/event-types/{padded.id}/holds", json={"start": iso(start)})
    assert response.status_code == 201
    later = app.test_client().post(
        hold_path,
        json={"start": iso(start + timedelta(minutes=30))},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert later.json["error"]["code"] == "slot_held"


def test_a_new_hold_replaces_the_sessions_or_addresss_old_one(
    client, app, sync, hold_path, watcher
):
    first = client.post(hold_path, json={"start": iso(start_at(hour=10))}).json
    second = client.post(hold_path, json={"start": iso(start_at(hour=11))}).json
    assert [h.id for h in live_holds()] == [second["hold_id"]]
    events = watcher.get_received()
    names = [(e["name"], e["args"][0]["start"]) for e in events]
    assert names == [
        ("slot_held", first["start"]),
        ("slot_released", first["start"]),
        ("slot_held", second["start"]),
    ]
    # Another browser at the same address replaces it too (one hold per address).
    third = app.test_client().post(hold_path, json={"start": iso(start_at(hour=12))}).json
    assert [h.id for h in live_holds()] == [third["hold_id"]]


def test_one_hold_per_ipv6_network(app, sync, hold_path):
    """Five addresses of one /64 (one host can have them all) keep one hold between them."""
    for hour, address in enumerate(f"2001:db8:1:2::{n}" for n in range(1, 6)):
        response = app.test_client().post(
            hold_path,
            json={"start": iso(start_at(hour=9 + hour))},
            environ_base={"REMOTE_ADDR": address},
        )
        assert response.status_code == 201, response.json
    [hold] = live_holds()
    assert hold.start_at == start_at(hour=13)
    assert hold.address == "2001:db8:1:2::/64"
    # Another /64 is another client.
    app.test_client().post(
        hold_path,
        json={"start": iso(start_at(hour=15))},
        environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"},
    )
    assert len(live_holds()) == 2


@pytest.mark.parametrize(
    ("address", "network"),
    [("203.0.113.7", "203.0.113.7"), ("2001:db8:1:2:aa:bb:cc:dd", "2001:db8:1:2::/64"),
     ("::ffff:203.0.113.7", "203.0.113.7"), ("fe80::1%eth0", "fe80::/64"), ("", "")],
)  # fmt: skip
def test_client_network(address, network):
    assert client_network(address) == network


def test_a_hold_is_not_renewed_past_its_lifetime(client, hold_path, watcher):
    body = client.post(hold_path, json={"start": iso(start_at())}).json
    [hold] = live_holds()
    # Placed 18 minutes ago: a renewal reaches the end of its lifetime, no further.
    hold.created_at = datetime.now(UTC) - timedelta(minutes=18)
    db.session.commit()
    renewed = client.post(f"/api/v1/holds/{body['hold_id']}/renew").json
    end = hold.created_at + holds.HOLD_MAX_LIFETIME
    assert datetime.fromisoformat(renewed["expires_at"]) <= end
    hold.created_at = datetime.now(UTC) - holds.HOLD_MAX_LIFETIME
    db.session.commit()
    response = client.post(f"/api/v1/holds/{body['hold_id']}/renew")
    assert response.status_code == 409
    assert response.json["error"]["code"] == "hold_expired"
    # The same page may hold the time again, afresh, as the time is still free.
    again = client.post(hold_path, json={"start": body["start"]})
    assert again.status_code == 201 and again.json["hold_id"] != body["hold_id"]


def test_a_renewal_tells_the_other_pages_the_new_expiry(client, hold_path, watcher):
    body = client.post(hold_path, json={"start": iso(start_at())}).json
    watcher.get_received()
    renewed = client.post(f"/api/v1/holds/{body['hold_id']}/renew").json
    [held] = received(watcher, "slot_held")
    assert held["start"] == body["start"] and held["expires_at"] == renewed["expires_at"]


def test_holding_the_same_start_again_renews_it(client, sync, hold_path):
    start = iso(start_at())
    first = client.post(hold_path, json={"start": start}).json
    again = client.post(hold_path, json={"start": start})
    assert again.status_code == 201
    assert again.json["hold_id"] == first["hold_id"]
    assert again.json["hold_token"] != first["hold_token"]
    assert len(live_holds()) == 1


def test_a_taken_or_unoffered_start_is_slot_unavailable(client, sync, hold_path):
    start = start_at()
    insert_booking(sync, start)
    for when in (start, start + timedelta(minutes=7), start_at(days=-1), start_at(days=400)):
        response = client.post(hold_path, json={"start": iso(when)})
        assert response.status_code == 409, when
        assert response.json["error"]["code"] == "slot_unavailable"
    assert live_holds() == []


def test_unknown_or_inactive_event_type_is_404(client, sync, make_event_type):
    off = make_event_type(sync.expert, slug="off", active=False)
    for event_type_id in (9999, off.id):
        response = client.post(
            f"/api/v1/event-types/{event_type_id}/holds", json={"start": iso(start_at())}
        )
        assert response.status_code == 404
        assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [{}, {"start": None}, {"start": "tomorrow"}, {"start": "2026-12-01T09:00:00"},
     {"start": 12}, {"start": "9" * 10_000}, {"start": ["2026-12-01T09:00:00Z"]},
     {"start": "2026-12-01T09:00:00Z", "extra": 1}, {"start": "0001-01-01T00:00:00+23:59"}],
)  # fmt: skip
def test_bad_starts_are_422(client, hold_path, body):
    response = client.post(hold_path, json=body)
    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] in ("start", "extra")


def test_a_body_that_is_not_json_is_refused(client, hold_path):
    assert client.post(hold_path, data="start=x").status_code == 415
    assert client.post(hold_path, data="[]", content_type="application/json").status_code == 400


def test_release_by_its_holder_only(client, app, sync, hold_path, watcher):
    body = client.post(hold_path, json={"start": iso(start_at())}).json
    watcher.get_received()
    stranger = app.test_client()
    path = f"/api/v1/holds/{body['hold_id']}"
    assert stranger.delete(path).status_code == 404
    assert stranger.delete(path, headers={"X-Hold-Token": "not-it"}).status_code == 404
    assert stranger.post(f"{path}/renew").status_code == 404
    assert len(live_holds()) == 1
    assert client.delete(path).status_code == 204
    assert live_holds() == []
    assert received(watcher, "slot_released") == [
        {"event_type_id": sync.id, "start": body["start"], "end": body["end"]}
    ]
    assert client.delete(path).status_code == 404


def test_releasing_an_expired_hold_whose_time_was_booked_announces_nothing(
    client, sync, hold_path, watcher
):
    body = client.post(hold_path, json={"start": iso(start_at())}).json
    [hold] = live_holds()
    hold.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.session.commit()
    insert_booking(sync, start_at())
    watcher.get_received()
    assert client.delete(f"/api/v1/holds/{body['hold_id']}").status_code == 204
    assert received(watcher, "slot_released") == []
    assert db.session.scalars(sa.select(Hold)).all() == []


def test_release_by_token_from_anywhere(client, app, hold_path):
    body = client.post(hold_path, json={"start": iso(start_at())}).json
    other = app.test_client()
    response = other.delete(
        f"/api/v1/holds/{body['hold_id']}", headers={"X-Hold-Token": body["hold_token"]}
    )
    assert response.status_code == 204


@pytest.mark.parametrize("hold_id", ["x", "0" * 32, "A" * 32, "9" * 5000, "%00"])
def test_unknown_hold_ids_are_404(client, hold_path, hold_id):
    client.post(hold_path, json={"start": iso(start_at())})
    assert client.delete(f"/api/v1/holds/{hold_id}").status_code == 404
    assert client.post(f"/api/v1/holds/{hold_id}/renew").status_code == 404


def test_renew(client, hold_path):
    body = client.post(hold_path, json={"start": iso(start_at())}).json
    [hold] = live_holds()
    hold.expires_at = datetime.now(UTC) + timedelta(seconds=20)
    db.session.commit()
    response = client.post(f"/api/v1/holds/{body['hold_id']}/renew")
    assert response.status_code == 200
    assert response.json["hold_id"] == body["hold_id"]
    expires = datetime.fromisoformat(response.json["expires_at"])
    assert expires - datetime.now(UTC) > timedelta(minutes=4)


def test_an_expired_hold_is_ignored_and_not_renewed(client, app, hold_path):
    start = iso(start_at())
    body = client.post(hold_path, json={"start": start}).json
    [hold] = live_holds()
    hold.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.session.commit()
    assert client.post(f"/api/v1/holds/{body['hold_id']}/renew").status_code == 404
    other = app.test_client()
    response = other.post(
        hold_path, json={"start": start}, environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert response.status_code == 201


def test_a_signed_in_browser_needs_the_csrf_header(client, sync, hold_path, make_user, auth):
    make_user("ann")
    auth.login("ann")
    response = client.post(hold_path, json={"start": iso(start_at())})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "csrf_failed"
    token = auth.csrf_token("/")
    ok = client.post(hold_path, json={"start": iso(start_at())}, headers={"X-CSRFToken": token})
    assert ok.status_code == 201


def test_another_sites_page_cannot_hold(client, hold_path):
    response = client.post(
        hold_path, json={"start": iso(start_at())}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
