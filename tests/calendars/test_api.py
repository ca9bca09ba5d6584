"""Calendars through the JSON API, against a real Radicale and a real HTTP feed server:
connect, discover, block, write back, sync, fail, remove."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from expertbook.calendars.models import BusyTime, CalendarConnection
from expertbook.extensions import db
from tests.api import bearer
from tests.booking_fixtures import day_ahead

FEED = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Test//Feed//EN\r
BEGIN:VEVENT\r
UID:dentist-1@example.com\r
DTSTAMP:20260101T000000Z\r
DTSTART:{start}\r
DTEND:{end}\r
SUMMARY:Dentist\r
END:VEVENT\r
END:VCALENDAR\r
"""


def ical(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def event(uid: str, start: datetime, minutes: int = 60) -> str:
    return FEED.replace("dentist-1@example.com", uid).format(
        start=ical(start), end=ical(start + timedelta(minutes=minutes))
    )


@pytest.fixture
def private_ok(app):
    app.config["ALLOW_PRIVATE_HOSTS"] = True


@pytest.fixture
def headers(coach):
    return bearer(coach)


def slot_starts(client, event_type, day: datetime) -> set[str]:
    d = day.date().isoformat()
    answer = client.get(f"/api/v1/event-types/{event_type.id}/slots?from={d}&to={d}&tz=UTC")
    assert answer.status_code == 200
    return {slot["start"] for slot in answer.json["slots"]}


def z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_ics_feed_blocks_its_busy_time_at_once(client, headers, sync, http_server, private_ok):
    busy = day_ahead(3, 10)
    url = http_server.route("/cal.ics", event("dentist-1@example.com", busy))
    assert z(busy) in slot_starts(client, sync, busy)
    answer = client.post("/api/v1/calendars", json={"kind": "ics", "url": url}, headers=headers)
    assert answer.status_code == 201, answer.json
    body = answer.json
    assert body["kind"] == "ics" and body["status"] == "ok" and body["last_synced_at"]
    assert [(c["blocks"], c["writes"]) for c in body["calendars"]] == [(True, False)]
    starts = slot_starts(client, sync, busy)
    assert z(busy) not in starts and z(busy + timedelta(minutes=30)) not in starts
    assert z(busy - timedelta(minutes=30)) in starts and z(busy + timedelta(hours=1)) in starts


@pytest.mark.parametrize(
    ("route", "words"),
    [
        ({"body": "<html><body>Sign in</body></html>", "content_type": "text/html"}, "web page"),
        ({"body": "nope", "status": 404}, "404"),
        ({"body": "", "status": 401}, "401"),
    ],
)
def test_a_feed_that_cannot_be_read_is_422_and_nothing_is_stored(
    client, headers, http_server, private_ok, route, words
):
    url = http_server.route("/bad.ics", **route)
    answer = client.post("/api/v1/calendars", json={"kind": "ics", "url": url}, headers=headers)
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "url"
    assert words.lower() in answer.json["error"]["message"].lower()
    assert db.session.query(CalendarConnection).count() == 0


def test_private_addresses_are_refused_unless_allowed(client, headers, http_server):
    url = http_server.route("/cal.ics", event("x@example.com", day_ahead(2, 9)))
    answer = client.post("/api/v1/calendars", json={"kind": "ics", "url": url}, headers=headers)
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "url"
    assert http_server["/cal.ics"].hits == 0  # refused before any request was made


def test_an_unreachable_server_is_422_in_words(client, headers, private_ok):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    answer = client.post(
        "/api/v1/calendars",
        json={"kind": "caldav", "url": f"http://127.0.0.1:{port}/", "username": "a",
              "password": "b"},
        headers=headers,
    )  # fmt: skip
    assert answer.status_code == 422
    assert "reach" in answer.json["error"]["message"].lower()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "exchange", "url": "https://x.example/"}, "kind"),
        ({"kind": "ics"}, "url"),
        ({"kind": "ics", "url": ""}, "url"),
        ({"kind": "ics", "url": "x" * 5000}, "url"),
        ({"kind": "ics", "url": "ftp://x.example/a.ics"}, "url"),
        ({"kind": "caldav", "url": "https://x.example/", "password": "p"}, "username"),
        ({"kind": "caldav", "url": "https://x.example/", "username": "u"}, "password"),
        (
            {"kind": "caldav", "url": "https://x.example/", "username": ["u"], "password": "p"},
            "username",
        ),
        ({"kind": "ics", "url": "https://x.example/a.ics", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_422_naming_the_field(client, headers, body, field):
    answer = client.post("/api/v1/calendars", json=body, headers=headers)
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["field"] == field


def connect_radicale(client, radicale, headers):
    """POST /api/v1/calendars for the Radicale account."""
    account = {"url": radicale.url, "username": radicale.username, "password": radicale.password}
    return client.post("/api/v1/calendars", json={"kind": "caldav", **account}, headers=headers)


def test_caldav_discovers_calendars_writes_back_and_never_shows_the_password(
    app, client, headers, sync, radicale, private_ok
):
    work = radicale.make_calendar("Work")
    radicale.make_calendar("Family")
    busy = day_ahead(4, 15)
    radicale.add_event(work, event("workshop@example.com", busy, 90))
    answer = connect_radicale(client, radicale, headers)
    assert answer.status_code == 201, answer.json
    assert radicale.password not in answer.get_data(as_text=True)
    calendars = {c["name"]: c for c in answer.json["calendars"]}
    assert set(calendars) == {"Work", "Family"}
    assert all(c["blocks"] and not c["writes"] for c in calendars.values())
    starts = slot_starts(client, sync, busy)
    assert (
        z(busy + timedelta(minutes=60)) not in starts and z(busy + timedelta(minutes=90)) in starts
    )
    listed = client.get("/api/v1/calendars", headers=headers)
    assert radicale.password not in listed.get_data(as_text=True)
    stored = db.session.get(CalendarConnection, answer.json["id"])
    assert radicale.password not in stored.secret  # encrypted at rest

    # Family receives bookings; a booking lands there with its own UID, and does not block
    # itself when the calendar is read again.
    connection_id = answer.json["id"]
    answer = client.patch(
        f"/api/v1/calendars/{connection_id}",
        json={"calendars": [{"id": calendars["Family"]["id"], "writes": True}]},
        headers=headers,
    )
    assert answer.status_code == 200, answer.json
    assert [c["name"] for c in answer.json["calendars"] if c["writes"]] == ["Family"]
    start = day_ahead(5, 11)
    booked = client.post(
        f"/api/v1/event-types/{sync.id}/bookings",
        json={"start": z(start), "name": "Bob", "email": "bob@example.com"},
    )
    assert booked.status_code == 201, booked.json
    uid = booked.json["uid"]
    assert uids_in(radicale, "Family") == [f"{uid}@testserver"]
    assert uids_in(radicale, "Work") == ["workshop@example.com"]
    synced = client.post(f"/api/v1/calendars/{connection_id}/sync", headers=headers)
    assert synced.status_code == 200 and synced.json["status"] == "ok"
    assert z(start) not in slot_starts(client, sync, start)  # the booking itself blocks it
    cancelled = client.post(f"/api/v1/bookings/{uid}/cancel", json={}, headers=headers)
    assert cancelled.status_code == 200
    assert uids_in(radicale, "Family") == []
    assert z(start) in slot_starts(client, sync, start)  # its copy never blocked it


def uids_in(radicale, name: str) -> list[str]:
    """The UIDs of the events in the account's calendar `name`, read with a CalDAV client."""
    with radicale.client() as dav:
        for calendar in dav.principal().get_calendars():
            if calendar.get_display_name() == name:
                return sorted(str(e.icalendar_component["uid"]) for e in calendar.get_events())
    raise AssertionError(f"no calendar {name}")


def test_at_most_one_calendar_receives_bookings(client, headers, radicale, private_ok):
    radicale.make_calendar("A")
    radicale.make_calendar("B")
    answer = connect_radicale(client, radicale, headers)
    ids = [c["id"] for c in answer.json["calendars"]]
    url = f"/api/v1/calendars/{answer.json['id']}"
    both = client.patch(
        url, json={"calendars": [{"id": i, "writes": True} for i in ids]}, headers=headers
    )
    assert both.status_code == 422
    for chosen in ids:
        answer = client.patch(
            url, json={"calendars": [{"id": chosen, "writes": True}]}, headers=headers
        )
        assert [c["id"] for c in answer.json["calendars"] if c["writes"]] == [chosen]
    bad = client.patch(url, json={"calendars": [{"id": ids[0], "blocks": "yes"}]}, headers=headers)
    assert bad.status_code == 422 and bad.json["error"]["field"] == "calendars.0.blocks"
    unknown = client.patch(url, json={"calendars": [{"id": 999999}]}, headers=headers)
    assert unknown.status_code == 422


def test_a_failed_sync_keeps_the_last_good_busy_times(client, headers, sync, http_server,
                                                      private_ok):  # fmt: skip
    busy = day_ahead(3, 10)
    url = http_server.route("/cal.ics", event("a@example.com", busy))
    created = client.post("/api/v1/calendars", json={"kind": "ics", "url": url}, headers=headers)
    http_server.route("/cal.ics", "<html>maintenance</html>", content_type="text/html")
    synced = client.post(f"/api/v1/calendars/{created.json['id']}/sync", headers=headers)
    assert synced.status_code == 200
    assert synced.json["status"] == "error" and "web page" in synced.json["error"]
    assert synced.json["busy_count"] == 1  # the last good sync's hour
    assert z(busy) not in slot_starts(client, sync, busy)
    listed = client.get("/api/v1/calendars", headers=headers).json["calendars"][0]
    assert listed["status"] == "error" and listed["error"]

    # The feed comes back with the event moved: the old time frees, the new one blocks.
    moved = busy + timedelta(hours=2)
    http_server.route("/cal.ics", event("a@example.com", moved))
    synced = client.post(f"/api/v1/calendars/{created.json['id']}/sync", headers=headers)
    assert synced.json["status"] == "ok" and "error" not in synced.json
    starts = slot_starts(client, sync, busy)
    assert z(busy) in starts and z(moved) not in starts


def test_deleting_a_connection_frees_its_time(client, headers, sync, http_server, private_ok):
    busy = day_ahead(3, 10)
    url = http_server.route("/cal.ics", event("a@example.com", busy))
    created = client.post("/api/v1/calendars", json={"kind": "ics", "url": url}, headers=headers)
    assert (
        client.delete(f"/api/v1/calendars/{created.json['id']}", headers=headers).status_code == 204
    )
    assert z(busy) in slot_starts(client, sync, busy)
    assert db.session.query(BusyTime).count() == 0


def test_another_experts_connection_is_unknown(client, headers, make_user, http_server,
                                               private_ok):  # fmt: skip
    url = http_server.route("/cal.ics", event("a@example.com", day_ahead(3, 10)))
    created = client.post("/api/v1/calendars", json={"kind": "ics", "url": url}, headers=headers)
    other = bearer(make_user("other", expert=True))
    path = f"/api/v1/calendars/{created.json['id']}"
    assert client.delete(path, headers=other).status_code == 404
    assert client.post(f"{path}/sync", headers=other).status_code == 404
    assert client.patch(path, json={"calendars": []}, headers=other).status_code == 404
    assert client.get("/api/v1/calendars", headers=other).json == {"calendars": []}
    client_user = bearer(make_user("client"))
    assert client.get("/api/v1/calendars", headers=client_user).status_code == 403
    assert client.get("/api/v1/calendars").status_code == 401
