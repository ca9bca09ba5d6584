"""My Bookings, the booking page, cancel and reschedule, through the Flask test client."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from expertbook.extensions import db, socketio
from expertbook.models import Booking
from tests.booking_fixtures import NOW, day_ahead


def test_my_bookings_lists_only_my_sessions(client, auth, make_user, make_booking):
    ann, bob = make_user("ann"), make_user("bob")
    mine, _ = make_booking(day_ahead(2, 10), client=ann, name="Ann")
    theirs, _ = make_booking(day_ahead(2, 11), client=bob, name="Bob")
    auth.login("ann")
    page = client.get("/bookings").text
    assert mine.uid in page and theirs.uid not in page


def test_an_expert_sees_both_roles(client, auth, coach, make_booking, make_event_type,
                                   make_user):  # fmt: skip
    other_expert = make_user("other", expert=True)
    from expertbook.availability import set_availability

    set_availability(other_expert, "UTC", {d: [(0, 1440)] for d in range(7)})
    db.session.commit()
    with_me, _ = make_booking(day_ahead(2, 10), name="Client of coach")
    from expertbook.booking import book_slot, check_request

    by_me = book_slot(
        make_event_type(other_expert, slug="x"),
        check_request(day_ahead(3, 9), "Coach", "coach@example.com"),
        client=coach,
        now=NOW,
        respond=lambda b, t: {},
    ).booking
    auth.login("coach")
    page = client.get("/bookings").text
    assert with_me.uid in page and by_me.uid in page
    assert "you are the expert" in page and "you booked" in page


def test_upcoming_and_past_tabs(client, auth, make_user, make_booking):
    ann = make_user("ann")
    past, _ = make_booking(day_ahead(-2, 10), client=ann, now=NOW - timedelta(days=3))
    soon, _ = make_booking(day_ahead(1, 10), client=ann)
    auth.login("ann")
    upcoming = client.get("/bookings").text
    assert soon.uid in upcoming and past.uid not in upcoming
    earlier = client.get("/bookings?scope=past").text
    assert past.uid in earlier and soon.uid not in earlier


def test_my_bookings_paginates(client, auth, make_user, make_booking):
    ann = make_user("ann")
    uids = [make_booking(day_ahead(1, 0) + timedelta(minutes=30 * i), client=ann)[0].uid
            for i in range(23)]  # fmt: skip
    auth.login("ann")
    first = client.get("/bookings").text
    more = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(more).text
    assert all(uid in first for uid in uids[:20]) and uids[20] not in first
    assert all(uid in second for uid in uids[20:]) and 'rel="next"' not in second


@pytest.mark.parametrize("who", ["stranger", "anonymous", "forged-token", "other-uid-token"])
def test_others_get_404(client, auth, make_user, make_booking, who):
    booking, token = make_booking(day_ahead(2, 10))
    other, other_token = make_booking(day_ahead(2, 12))
    query = ""
    if who == "stranger":
        make_user("eve")
        auth.login("eve")
    elif who == "forged-token":
        query = "?token=" + token[:-2] + "xx"
    elif who == "other-uid-token":
        query = "?token=" + other_token
    for path in (f"/bookings/{booking.uid}", f"/bookings/{booking.uid}.ics"):
        assert client.get(path + query).status_code == 404
    assert client.get(f"/bookings/{booking.uid}/reschedule{query}").status_code == 404
    assert client.post(f"/bookings/{booking.uid}/cancel{query}").status_code in (400, 404)
    assert db.session.get(Booking, booking.id).status == "confirmed"


def test_unknown_and_huge_uids_are_404(client):
    assert client.get("/bookings/nope").status_code == 404
    assert client.get("/bookings/" + "x" * 5000).status_code == 404


def test_guest_cancels_with_the_manage_link(client, app, auth, sync, make_booking):
    booking, token = make_booking(day_ahead(2, 10))
    watcher = socketio.test_client(app)
    watcher.emit("join", {"event_type_id": sync.id})
    watcher.get_received()
    path = f"/bookings/{booking.uid}/cancel?token={token}"
    response = auth.post(path, {"reason": "Ill, sorry"},
                         token_from=f"/bookings/{booking.uid}?token={token}")  # fmt: skip
    assert response.status_code == 302
    db.session.expire_all()
    assert (booking.status, booking.cancel_reason, booking.sequence) == (
        "cancelled", "Ill, sorry", 1)  # fmt: skip
    events = [e for e in watcher.get_received() if e["name"] == "slot_released"]
    assert [e["args"][0]["start"] for e in events] == [booking.start_at.strftime(
        "%Y-%m-%dT%H:%M:%SZ")]  # fmt: skip
    # The slot is offered again.
    day = booking.start_at.date().isoformat()
    slots = client.get(f"/api/v1/event-types/{sync.id}/slots?from={day}&to={day}&tz=UTC").json
    assert booking.start_at.strftime("%Y-%m-%dT%H:%M:%SZ") in [s["start"] for s in slots["slots"]]
    # The cancelled booking's page and .ics still work and say so.
    assert "Cancelled" in client.get(f"/bookings/{booking.uid}?token={token}").text
    ics = client.get(f"/bookings/{booking.uid}.ics?token={token}").text
    assert "STATUS:CANCELLED" in ics and "SEQUENCE:1" in ics


def test_the_client_reschedules_from_my_bookings(client, auth, make_user, make_booking):
    ann = make_user("ann")
    booking, _ = make_booking(day_ahead(2, 10), client=ann)
    auth.login("ann")
    page = client.get(f"/bookings/{booking.uid}/reschedule").text
    new_start = booking.start_at + timedelta(minutes=30)  # overlaps its own old time: allowed
    new_iso = new_start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f'data-start="{new_iso}"' in page
    assert f'data-start="{booking.start_at.strftime("%Y-%m-%dT%H:%M:%SZ")}"' not in page
    response = auth.post(f"/bookings/{booking.uid}/reschedule", {"start": new_iso})
    assert response.status_code == 302
    db.session.expire_all()
    assert booking.start_at == new_start and booking.sequence == 1
    assert booking.end_at - booking.start_at == timedelta(minutes=30)


def test_reschedule_releases_the_old_time_as_it_was(client, app, auth, sync, make_user,
                                                     make_booking):  # fmt: skip
    """The expert lengthened the event type since: the released time is still the
    booking's own 30 minutes, and the taken one the new duration."""
    ann = make_user("ann")
    booking, _ = make_booking(day_ahead(2, 10), client=ann)
    old_start, old_end = booking.start_at, booking.end_at
    sync.duration_minutes = 60
    db.session.commit()
    watcher = socketio.test_client(app)
    watcher.emit("join", {"event_type_id": sync.id})
    watcher.get_received()
    auth.login("ann")
    new_start = day_ahead(2, 13)
    response = auth.post(f"/bookings/{booking.uid}/reschedule", {"start": z(new_start)})
    assert response.status_code == 302
    events = {e["name"]: e["args"][0] for e in watcher.get_received()}
    assert (events["slot_released"]["start"], events["slot_released"]["end"]) == (
        z(old_start), z(old_end))  # fmt: skip
    assert (events["slot_taken"]["start"], events["slot_taken"]["end"]) == (
        z(new_start), z(new_start + timedelta(minutes=60)))  # fmt: skip


def z(instant) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_reschedule_to_a_taken_time_keeps_the_old_one(client, auth, make_user, make_booking):
    ann = make_user("ann")
    booking, _ = make_booking(day_ahead(2, 10), client=ann)
    other, _ = make_booking(day_ahead(2, 14))
    auth.login("ann")
    response = auth.post(
        f"/bookings/{booking.uid}/reschedule",
        {"start": other.start_at.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    assert response.status_code == 200
    assert "not available" in response.text
    db.session.expire_all()
    assert booking.start_at == day_ahead(2, 10) and booking.sequence == 0


@pytest.mark.parametrize("bad", ["", "garbage", "2026-13-45T10:00:00Z", "2030-01-01T10:00:00"])
def test_reschedule_with_bad_start(client, auth, make_user, make_booking, bad):
    ann = make_user("ann")
    booking, _ = make_booking(day_ahead(2, 10), client=ann)
    auth.login("ann")
    response = auth.post(f"/bookings/{booking.uid}/reschedule", {"start": bad})
    assert response.status_code == 200
    db.session.expire_all()
    assert booking.sequence == 0


def test_api_lists_and_cancels(client, make_user, make_booking, coach):
    from expertbook.accounts import create_api_token

    ann = make_user("ann")
    booking, _ = make_booking(day_ahead(2, 10), client=ann)
    ann_token, coach_token, eve_token = (create_api_token(u) for u in (ann, coach, make_user("e")))
    db.session.commit()

    def call(method, path, token, **kwargs):
        headers = {"Authorization": f"Bearer {token}"}
        return client.open(path, method=method, headers=headers, **kwargs)

    listed = call("GET", "/api/v1/bookings?role=client&scope=upcoming", ann_token).json
    assert [b["uid"] for b in listed["bookings"]] == [booking.uid]
    assert call("GET", "/api/v1/bookings?role=expert", coach_token).json["bookings"][0]["uid"] == (
        booking.uid)  # fmt: skip
    assert call("GET", "/api/v1/bookings?role=client", eve_token).json == {
        "bookings": [],
        "next_cursor": None,
    }
    assert call("GET", "/api/v1/bookings?role=boss", ann_token).status_code == 422
    assert call("GET", "/api/v1/bookings?scope=later", ann_token).status_code == 422
    assert call("GET", "/api/v1/bookings", None).status_code == 401
    # Another user's uid looks exactly like an unknown one.
    assert call("POST", f"/api/v1/bookings/{booking.uid}/cancel", eve_token).status_code == 404
    cancelled = call("POST", f"/api/v1/bookings/{booking.uid}/cancel", coach_token,
                     json={"reason": "Conflict"})  # fmt: skip
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    again = call("POST", f"/api/v1/bookings/{booking.uid}/cancel", ann_token)
    assert again.status_code == 200 and again.json["status"] == "cancelled"
    assert db.session.scalar(sa.select(Booking.sequence)) == 1


def test_api_cancel_validation(client, make_user, make_booking):
    from expertbook.accounts import create_api_token

    ann = make_user("ann")
    booking, _ = make_booking(day_ahead(2, 10), client=ann)
    token = create_api_token(ann)
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/api/v1/bookings/{booking.uid}/cancel"
    assert client.post(path, json={"reason": "x" * 3000}, headers=headers).status_code == 422
    assert client.post(path, json={"why": "x"}, headers=headers).status_code == 422
    for wrong in (False, 0, [], {}, ["why"]):  # not text: refused, not taken as "no reason"
        refused = client.post(path, json={"reason": wrong}, headers=headers)
        assert (refused.status_code, refused.json["error"]["field"]) == (422, "reason")
    assert client.post(path, data="[]", content_type="application/json",
                       headers=headers).status_code == 400  # fmt: skip
    assert db.session.get(Booking, booking.id).status == "confirmed"


def test_a_past_booking_cannot_be_cancelled(client, make_user, make_booking):
    from expertbook.accounts import create_api_token

    ann = make_user("ann")
    past, _ = make_booking(day_ahead(-1, 10), client=ann, now=NOW - timedelta(days=2))
    token = create_api_token(ann)
    db.session.commit()
    response = client.post(f"/api/v1/bookings/{past.uid}/cancel",
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert response.status_code == 409


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2026-02-30", "x" * 5000])
def test_reschedule_page_survives_any_date(client, make_booking, day):
    booking, token = make_booking(day_ahead(2, 10))
    response = client.get(f"/bookings/{booking.uid}/reschedule?token={token}&date={day}")
    assert response.status_code == 200


def test_a_session_in_progress_offers_no_reschedule(client, auth, make_user, sync):
    from tests.booking_fixtures import insert_booking

    ann = make_user("ann")
    booking = insert_booking(sync, NOW - timedelta(minutes=20), minutes=60)
    booking.client_id = ann.id
    db.session.commit()
    auth.login("ann")
    reschedule = f"/bookings/{booking.uid}/reschedule"
    listing = client.get("/bookings").text
    assert booking.uid in listing and reschedule not in listing
    page = client.get(f"/bookings/{booking.uid}").text
    assert reschedule not in page and 'id="cancel"' in page  # it can still be called off


def test_a_guests_calendar_file_links_back_with_the_token(client, make_booking):
    import icalendar

    booking, token = make_booking(day_ahead(2, 10))
    raw = client.get(f"/bookings/{booking.uid}.ics?token={token}").data
    (event,) = icalendar.Calendar.from_ical(raw).walk("VEVENT")
    manage = next(line for line in str(event["DESCRIPTION"]).splitlines() if "Manage" in line)
    link = manage.removeprefix("Manage: ").removeprefix("http://testserver")
    assert f"token={token}" in link
    assert client.get(link).status_code == 200  # signed out, as a guest is


def test_a_deactivated_event_types_booking_cannot_be_moved_but_can_be_cancelled(
    client, auth, sync, make_booking
):
    booking, token = make_booking(day_ahead(2, 10))
    sync.active = False
    db.session.commit()
    detail = f"/bookings/{booking.uid}?token={token}"
    page = client.get(detail).text
    assert "/reschedule" not in page and 'id="cancel"' in page
    new_iso = (booking.start_at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    moved = auth.post(f"/bookings/{booking.uid}/reschedule?token={token}", {"start": new_iso},
                      token_from=detail)  # fmt: skip
    assert moved.status_code == 302
    assert "no longer offered" in client.get(detail).text
    db.session.expire_all()
    assert booking.start_at == day_ahead(2, 10) and booking.sequence == 0
    cancelled = auth.post(f"/bookings/{booking.uid}/cancel?token={token}", {"reason": "Off"},
                          token_from=detail)  # fmt: skip
    assert cancelled.status_code == 302
    db.session.expire_all()
    assert booking.status == "cancelled"


def test_a_manage_link_changes_nothing_once_the_session_is_over(client, auth, make_booking):
    booking, token = make_booking(day_ahead(-1, 10), now=NOW - timedelta(days=2))
    detail = f"/bookings/{booking.uid}?token={token}"
    assert client.get(detail).status_code == 200  # viewing stays
    assert client.get(f"/bookings/{booking.uid}.ics?token={token}").status_code == 200
    csrf = auth.csrf_token(detail)
    for action, form in (("cancel", {"reason": "late"}), ("reschedule", {"start": "x"})):
        path = f"/bookings/{booking.uid}/{action}?token={token}"
        response = client.post(path, data={"csrf_token": csrf, **form})
        assert response.status_code == 403 and "over" in response.text
        assert client.get(path).status_code in (403, 405)
    db.session.expire_all()
    assert (booking.status, booking.sequence) == ("confirmed", 0)


def test_reschedule_days_stay_between_today_and_the_horizon(client, make_booking):
    """Issue 16, finding 14: no Previous day into the past, no Next day past the horizon."""
    booking, token = make_booking(day_ahead(2, 10))
    base = f"/bookings/{booking.uid}/reschedule?token={token}&tz=UTC"
    today = datetime.now(UTC).date()
    page = client.get(f"{base}&date={today}").text
    assert "Previous day" not in page and "Next day" in page
    last = (datetime.now(UTC) + timedelta(days=booking.event_type.max_days_ahead)).date()
    page = client.get(f"{base}&date={last}").text
    assert "Previous day" in page and "Next day" not in page
    assert 'class="day-nav"' in page and "cal-nav" not in page
