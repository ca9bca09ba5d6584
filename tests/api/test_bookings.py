"""POST /api/v1/event-types/<id>/bookings through the Flask test client."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from expertbook.accounts import create_api_token
from expertbook.availability import set_availability
from expertbook.extensions import db
from expertbook.models import Booking, Hold

START = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
ISO = START.strftime("%Y-%m-%dT%H:%M:%SZ")
ISO_LATER = (START + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def event_type(make_user, make_event_type):
    expert = make_user("coach", expert=True)
    set_availability(expert, "UTC", {day: [(9 * 60, 17 * 60)] for day in range(7)})
    db.session.commit()
    return make_event_type(expert, duration_minutes=30)


def post(client, event_type_id, body, **headers):
    return client.post(f"/api/v1/event-types/{event_type_id}/bookings", json=body, headers=headers)


def booking_count() -> int:
    return db.session.scalar(sa.select(sa.func.count(Booking.id)))


def test_book_answers_201_with_absolute_links(client, event_type):
    response = post(client, event_type.id, {"start": ISO, "name": "Ann", "email": "a@example.com"})
    assert response.status_code == 201
    body = response.json
    assert body["status"] == "confirmed"
    end = START + timedelta(minutes=30)
    assert (body["start"], body["end"]) == (ISO, end.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert body["video_url"].startswith("https://zoom.us/j/")
    for link in ("manage_url", "ics_url"):
        assert body[link].startswith("http://testserver/bookings/" + body["uid"])
        assert "token=" in body[link]
    # The guest's links are the guest's key.
    page = client.get(body["manage_url"].removeprefix("http://testserver"))
    assert page.status_code == 200 and body["video_url"] in page.text
    ics = client.get(body["ics_url"].removeprefix("http://testserver"))
    assert ics.status_code == 200 and ics.content_type.startswith("text/calendar")


def test_start_with_an_offset_is_the_same_instant(client, event_type):
    local = START.astimezone(ZoneInfo("Asia/Kolkata")).isoformat()
    response = post(client, event_type.id, {"start": local, "name": "A", "email": "a@example.com"})
    assert response.status_code == 201 and response.json["start"] == ISO


def test_a_taken_slot_is_409(client, event_type):
    post(client, event_type.id, {"start": ISO, "name": "Ann", "email": "a@example.com"})
    response = post(client, event_type.id, {"start": ISO, "name": "Bob", "email": "b@example.com"})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "slot_unavailable"
    assert booking_count() == 1


def test_idempotency_key_replays_the_first_201(client, event_type):
    body = {"start": ISO, "name": "Ann", "email": "a@example.com"}
    first = post(client, event_type.id, body, **{"Idempotency-Key": "k-1"})
    again = post(client, event_type.id, body, **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json == first.json
    assert booking_count() == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "Ann", "email": "a@example.com"}, "start"),
        ({"start": ISO, "email": "a@example.com"}, "name"),
        ({"start": ISO, "name": "Ann"}, "email"),
        ({"start": "tomorrow", "name": "Ann", "email": "a@example.com"}, "start"),
        ({"start": ISO[:-1], "name": "Ann", "email": "a@example.com"}, "start"),
        ({"start": "2026-02-30T10:00:00Z", "name": "Ann", "email": "a@example.com"}, "start"),
        ({"start": 1234567890, "name": "Ann", "email": "a@example.com"}, "start"),
        ({"start": ISO, "name": "", "email": "a@example.com"}, "name"),
        ({"start": ISO, "name": "x" * 10_000, "email": "a@example.com"}, "name"),
        ({"start": ISO, "name": ["Ann"], "email": "a@example.com"}, "name"),
        ({"start": ISO, "name": "Ann", "email": "nope"}, "email"),
        ({"start": ISO, "name": "Ann", "email": "a@example.com", "notes": 5}, "notes"),
        ({"start": ISO, "name": "Ann", "email": "a@example.com", "admin": True}, "admin"),
    ],
)
def test_invalid_fields_are_422_with_the_field(client, event_type, body, field):
    response = post(client, event_type.id, body)
    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] == field
    assert booking_count() == 0


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2]", '"a string"', "null"])
def test_a_body_that_is_not_an_object_is_400(client, event_type, raw):
    response = client.post(
        f"/api/v1/event-types/{event_type.id}/bookings",
        data=raw,
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    "start",
    [
        (START + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),  # off the grid
        (START - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),  # in the past
        START.replace(hour=20).strftime("%Y-%m-%dT%H:%M:%SZ"),  # outside hours
    ],
)
def test_times_not_offered_are_409(client, event_type, start):
    response = post(client, event_type.id, {"start": start, "name": "A", "email": "a@example.com"})
    assert response.status_code == 409


def test_unknown_and_inactive_event_types_are_404(client, event_type):
    body = {"start": ISO, "name": "Ann", "email": "a@example.com"}
    assert post(client, 999, body).status_code == 404
    event_type.active = False
    db.session.commit()
    assert post(client, event_type.id, body).status_code == 404


def test_a_token_holder_owns_the_booking(client, event_type, make_user):
    ann = make_user("ann")
    token = create_api_token(ann)
    db.session.commit()
    response = post(
        client,
        event_type.id,
        {"start": ISO, "name": "Ann", "email": "ann@example.com"},
        Authorization=f"Bearer {token}",
    )
    assert response.status_code == 201
    assert db.session.scalar(sa.select(Booking.client_id)) == ann.id


def test_notes_lose_bidirectional_overrides_and_zero_width_characters(client, event_type):
    notes = "refund to \u202eeman ym\u202c\u200b please"
    body = {"start": ISO, "name": "Ann", "email": "a@example.com", "notes": notes}
    assert post(client, event_type.id, body).status_code == 201
    assert db.session.scalar(sa.select(Booking.notes)) == "refund to eman ym please"


BODY = {"start": ISO, "name": "Ann", "email": "a@example.com"}


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://testserver.evil"])
def test_a_guest_booking_from_another_sites_page_is_403(client, event_type, origin):
    response = post(client, event_type.id, BODY, Origin=origin)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "foreign_origin"
    assert booking_count() == 0


@pytest.mark.parametrize("origin", [None, "http://testserver", "http://localhost"])
def test_a_booking_from_our_own_pages_or_without_origin_goes_through(client, event_type, origin):
    headers = {"Origin": origin} if origin else {}
    client.application.config["BASE_URL"] = "http://testserver"
    response = client.post(
        f"/api/v1/event-types/{event_type.id}/bookings",
        json=BODY,
        headers=headers,
        base_url="http://localhost" if origin == "http://localhost" else "http://testserver",
    )
    assert response.status_code == 201, response.json


def test_a_bearer_token_call_is_not_held_by_its_origin(client, event_type, make_user):
    token = create_api_token(make_user("ann"))
    db.session.commit()
    response = post(
        client, event_type.id, BODY, Origin="https://tool.example", Authorization=f"Bearer {token}"
    )
    assert response.status_code == 201, response.json


def test_deeply_nested_json_is_400_not_a_traceback(client, event_type, caplog):
    response = client.post(
        f"/api/v1/event-types/{event_type.id}/bookings",
        data="[" * 30_000,
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


@pytest.mark.parametrize("start", ["9999-12-31T23:00:00Z", "0001-01-01T00:30:00Z"])
def test_a_start_at_the_calendars_ends_is_409_on_both_databases(any_app, event_type, start):
    body = {"start": start, "name": "Ann", "email": "a@example.com"}
    response = post(any_app.test_client(), event_type.id, body)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "slot_unavailable"
    assert booking_count() == 0


def test_an_expert_booking_their_own_event_type_is_409(client, event_type):
    """The rule lives in book_slot, not only in the booking form."""
    token = create_api_token(event_type.expert)
    db.session.commit()
    response = post(client, event_type.id, BODY, Authorization=f"Bearer {token}")
    assert response.status_code == 409
    assert response.json["error"]["code"] == "own_event_type"
    assert booking_count() == 0


# ------------------------------------------------------------------ issue 18: holds, pending,
# answers


def hold_start(client, event_type_id, start=ISO, **environ):
    """Hold `start` through the holds API; returns its 201 body (with the hold_token)."""
    response = client.post(
        f"/api/v1/event-types/{event_type_id}/holds", json={"start": start}, environ_base=environ
    )
    assert response.status_code == 201, response.json
    return response.json


def held_count() -> int:
    return db.session.scalar(sa.select(sa.func.count(Hold.id)))


def test_a_held_start_is_409_slot_held_for_others(any_app, event_type):
    holder, other = any_app.test_client(), any_app.test_client()
    hold_start(holder, event_type.id)
    response = post(other, event_type.id, BODY)
    assert response.status_code == 409
    error = response.json["error"]
    assert error["code"] == "slot_held" and 240 < error["retry_after"] <= 300
    assert response.headers["Retry-After"] == str(error["retry_after"])
    # A token that is not the hold's changes nothing.
    response = post(other, event_type.id, BODY, **{"X-Hold-Token": "not-the-token"})
    assert response.json["error"]["code"] == "slot_held"
    assert booking_count() == 0


def test_the_holder_books_by_token(any_app, event_type):
    held = hold_start(any_app.test_client(), event_type.id)
    response = post(
        any_app.test_client(), event_type.id, BODY, **{"X-Hold-Token": held["hold_token"]}
    )
    assert response.status_code == 201, response.json
    assert held_count() == 0


def test_the_holder_books_by_browser_session(any_app, event_type):
    holder = any_app.test_client()
    hold_start(holder, event_type.id)
    response = post(holder, event_type.id, BODY)
    assert response.status_code == 201, response.json
    assert held_count() == 0


def test_the_holder_books_after_the_hold_expired_if_still_free(any_app, event_type):
    holder = any_app.test_client()
    hold_start(holder, event_type.id)
    db.session.execute(sa.update(Hold).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    db.session.commit()
    assert post(holder, event_type.id, BODY).status_code == 201
    # The time was not left for them, though: somebody else took it first.
    again = hold_start(holder, event_type.id, ISO_LATER)
    db.session.execute(sa.update(Hold).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    db.session.commit()
    taken = post(any_app.test_client(), event_type.id, {**BODY, "start": ISO_LATER})
    assert taken.status_code == 201
    response = post(
        any_app.test_client(),
        event_type.id,
        {**BODY, "start": ISO_LATER},
        **{"X-Hold-Token": again["hold_token"]},
    )
    assert response.json["error"]["code"] == "slot_unavailable"


def test_a_request_answers_201_pending(any_app, event_type):
    event_type.requires_confirmation = True
    db.session.commit()
    response = post(any_app.test_client(), event_type.id, BODY)
    assert response.status_code == 201 and response.json["status"] == "pending"
    # Its time is blocked as if confirmed.
    other = post(any_app.test_client(), event_type.id, {**BODY, "email": "b@example.com"})
    assert other.json["error"]["code"] == "slot_unavailable"


def test_a_full_day_is_409_slot_unavailable(client, event_type):
    event_type.max_per_day = 1
    db.session.commit()
    assert post(client, event_type.id, BODY).status_code == 201
    response = post(client, event_type.id, {**BODY, "start": ISO_LATER})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "slot_unavailable"


ANSWERED = [
    {"id": "topic", "label": "Topic", "kind": "text", "required": True},
    {"id": "more", "label": "More", "kind": "long_text", "required": False},
]


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        (None, "answers.topic"),
        ({"more": "x"}, "answers.topic"),
        ({"topic": "Tax", "nope": "x"}, "answers.nope"),
        ({"topic": "x" * 501}, "answers.topic"),
        ({"topic": "Tax", "more": "x" * 5001}, "answers.more"),
        ({"topic": 42}, "answers.topic"),
        (["Tax"], "answers"),
    ],
)
def test_bad_answers_are_422_naming_the_question(client, event_type, answers, field):
    event_type.questions = ANSWERED
    db.session.commit()
    body = {**BODY} if answers is None else {**BODY, "answers": answers}
    response = post(client, event_type.id, body)
    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] == field
    assert booking_count() == 0


def test_answers_are_kept(client, event_type):
    event_type.questions = ANSWERED
    db.session.commit()
    response = post(client, event_type.id, {**BODY, "answers": {"topic": " Tax "}})
    assert response.status_code == 201
    db.session.expire_all()
    assert db.session.scalar(sa.select(Booking.answers)) == {"topic": "Tax"}
