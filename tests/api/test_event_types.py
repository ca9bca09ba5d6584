import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from expertbook.event_types import EventTypeError, remove_event_type
from expertbook.extensions import db
from expertbook.models import ApiToken, Booking, EventType, utcnow
from tests.api import bearer
from tests.booking_fixtures import insert_booking

NEW = {"title": "Intro call", "slug": "intro", "duration_minutes": 30}
NOT_OBJECTS = [
    {"json": ["title", "Intro"]},
    {"json": "Intro"},
    {"data": "{not json", "content_type": "application/json"},
    {"data": ""},
]


@pytest.fixture
def ann(make_user):
    return make_user("ann", expert=True)


@pytest.fixture
def headers(ann):
    return bearer(ann)


@pytest.fixture
def intro(ann, make_event_type):
    return make_event_type(ann, slug="intro", title="Intro", duration_minutes=30)


def error_of(response) -> tuple[int, str, str | None]:
    error = response.json["error"]
    return response.status_code, error["code"], error.get("field")


def test_post_fills_in_the_defaults(client, headers):
    response = client.post("/api/v1/event-types", json=NEW, headers=headers)
    assert response.status_code == 201
    assert response.json == {
        "id": response.json["id"],
        "url": "http://testserver/ann/intro",
        "title": "Intro call",
        "slug": "intro",
        "duration_minutes": 30,
        "description": "",
        "location": "zoom",
        "buffer_before_minutes": 0,
        "buffer_after_minutes": 0,
        "min_notice_minutes": 0,
        "max_days_ahead": 60,
        "slot_interval_minutes": None,
        "active": True,
        "reminder_minutes": [1440],
        "requires_confirmation": False,
        "confirm_within_hours": None,
        "max_per_day": None,
        "max_per_week": None,
        "questions": [],
    }
    assert db.session.get(EventType, response.json["id"]).slug == "intro"
    listed = client.get("/api/v1/event-types", headers=headers).json["event_types"]
    assert listed == [response.json]


@pytest.mark.parametrize("missing", ["title", "slug", "duration_minutes"])
def test_post_needs_title_slug_and_duration(client, headers, missing):
    body = {name: value for name, value in NEW.items() if name != missing}
    response = client.post("/api/v1/event-types", json=body, headers=headers)
    assert error_of(response) == (422, "missing_field", missing)


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"title": None}, "title", "missing_field"),
        ({"title": "   "}, "title", "invalid_field"),
        ({"title": 5}, "title", "invalid_field"),
        ({"title": "x" * 121}, "title", "invalid_field"),
        ({"slug": "Bad Slug"}, "slug", "invalid_field"),
        ({"slug": "a--b"}, "slug", "invalid_field"),
        ({"duration_minutes": 4}, "duration_minutes", "invalid_field"),
        ({"duration_minutes": 721}, "duration_minutes", "invalid_field"),
        ({"duration_minutes": "30"}, "duration_minutes", "invalid_field"),
        ({"duration_minutes": 30.5}, "duration_minutes", "invalid_field"),
        ({"duration_minutes": True}, "duration_minutes", "invalid_field"),
        ({"description": 7}, "description", "invalid_field"),
        ({"location": "skype"}, "location", "invalid_field"),
        ({"buffer_before_minutes": -1}, "buffer_before_minutes", "invalid_field"),
        ({"buffer_after_minutes": 721}, "buffer_after_minutes", "invalid_field"),
        ({"min_notice_minutes": -5}, "min_notice_minutes", "invalid_field"),
        ({"max_days_ahead": 0}, "max_days_ahead", "invalid_field"),
        ({"slot_interval_minutes": 4}, "slot_interval_minutes", "invalid_field"),
        ({"active": "yes"}, "active", "invalid_field"),
        ({"colour": "red"}, "colour", "unknown_field"),
        ({"requires_confirmation": "yes"}, "requires_confirmation", "invalid_field"),
        ({"requires_confirmation": None}, "requires_confirmation", "invalid_field"),
        ({"confirm_within_hours": 0}, "confirm_within_hours", "invalid_field"),
        ({"confirm_within_hours": 721}, "confirm_within_hours", "invalid_field"),
        ({"confirm_within_hours": "24"}, "confirm_within_hours", "invalid_field"),
        ({"max_per_day": 0}, "max_per_day", "invalid_field"),
        ({"max_per_day": 1001}, "max_per_day", "invalid_field"),
        ({"max_per_day": 2.5}, "max_per_day", "invalid_field"),
        ({"max_per_week": -1}, "max_per_week", "invalid_field"),
        ({"max_per_week": True}, "max_per_week", "invalid_field"),
        ({"max_per_day": 5, "max_per_week": 4}, "max_per_week", "invalid_field"),
        ({"questions": "What is your company?"}, "questions", "invalid_field"),
        ({"questions": {"label": "x"}}, "questions", "invalid_field"),
        ({"questions": [{"label": f"Q{i}"} for i in range(11)]}, "questions", "invalid_field"),
        ({"questions": [{"label": "x" * 10_000}]}, "questions.0.label", "invalid_field"),
        ({"questions": [{"label": ""}]}, "questions.0.label", "invalid_field"),
        ({"questions": [{"label": "a\u202eb"}]}, "questions.0.label", "invalid_field"),
        ({"questions": [{"label": "x", "kind": "date"}]}, "questions.0.kind", "invalid_field"),
        ({"questions": [{"label": "x", "kind": "choice"}]}, "questions.0.choices", "invalid_field"),
        (
            {"questions": [{"label": "x", "id": "a"}, {"label": "y", "id": "a"}]},
            "questions.1.id",
            "invalid_field",
        ),
        ({"questions": [{"label": "x", "colour": "red"}]}, "questions.0.colour", "invalid_field"),
        ({"questions": [None]}, "questions.0", "invalid_field"),
    ],
)
def test_post_refuses_bad_fields(client, headers, change, field, code):
    response = client.post("/api/v1/event-types", json={**NEW, **change}, headers=headers)
    assert error_of(response) == (422, code, field)
    assert db.session.scalar(sa.select(sa.func.count(EventType.id))) == 0


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"title": ""}, "title", "invalid_field"),
        ({"title": None}, "title", "invalid_field"),
        ({"duration_minutes": 0}, "duration_minutes", "invalid_field"),
        ({"id": 5}, "id", "unknown_field"),
        ({"url": "http://elsewhere"}, "url", "unknown_field"),
    ],
)
def test_patch_refuses_bad_fields(client, headers, intro, body, field, code):
    response = client.patch(f"/api/v1/event-types/{intro.id}", json=body, headers=headers)
    assert error_of(response) == (422, code, field)
    assert (intro.title, intro.duration_minutes) == ("Intro", 30)


@pytest.mark.parametrize("body", NOT_OBJECTS)
@pytest.mark.parametrize("method", ["post", "patch"])
def test_a_body_that_is_not_an_object_is_400(client, headers, intro, method, body):
    path = "/api/v1/event-types" + (f"/{intro.id}" if method == "patch" else "")
    response = getattr(client, method)(path, headers=headers, **body)
    assert error_of(response) == (400, "invalid_json", None)


def test_a_slug_in_use_is_422_slug_taken(client, headers, ann, intro, make_event_type, make_user):
    taken = client.post("/api/v1/event-types", json=NEW, headers=headers)
    assert error_of(taken) == (422, "slug_taken", "slug")
    other = make_event_type(ann, slug="deep-dive")
    renamed = client.patch(f"/api/v1/event-types/{other.id}", json=NEW, headers=headers)
    assert error_of(renamed) == (422, "slug_taken", "slug")
    # Keeping one's own slug is no conflict, nor is another expert's use of it.
    kept = client.patch(f"/api/v1/event-types/{intro.id}", json={"slug": "intro"}, headers=headers)
    assert kept.status_code == 200
    bob = make_user("bob", expert=True)
    assert client.post("/api/v1/event-types", json=NEW, headers=bearer(bob)).status_code == 201


def test_get_patch_delete(client, headers, intro):
    path = f"/api/v1/event-types/{intro.id}"
    got = client.get(path, headers=headers)
    assert got.status_code == 200
    assert got.json["url"] == "http://testserver/ann/intro"
    change = {"title": "New title", "active": False, "slot_interval_minutes": 15}
    patched = client.patch(path, json=change, headers=headers)
    assert patched.status_code == 200
    assert patched.json == {**got.json, **change}
    cleared = client.patch(path, json={"slot_interval_minutes": None}, headers=headers)
    assert cleared.json["slot_interval_minutes"] is None
    deleted = client.delete(path, headers=headers)
    assert (deleted.status_code, deleted.data) == (204, b"")
    assert error_of(client.get(path, headers=headers)) == (404, "not_found", None)


@pytest.mark.parametrize("status", [Booking.CONFIRMED, Booking.PENDING])
def test_an_upcoming_booking_keeps_its_event_type(client, headers, intro, status):
    """A request waiting for the expert is as upcoming as a confirmed booking."""
    insert_booking(intro, datetime.now(UTC) + timedelta(days=3), status=status)
    response = client.delete(f"/api/v1/event-types/{intro.id}", headers=headers)
    assert error_of(response) == (409, "has_upcoming_bookings", None)
    assert "upcoming" in response.json["error"]["message"]
    db.session.refresh(intro)
    assert (intro.active, intro.archived_at) == (True, None)


def test_with_only_past_or_cancelled_bookings_delete_archives(client, headers, intro, ann):
    """Issue 16, finding 6: deleting would delete the bookings (they cascade), so the type
    is archived: 204 as for a delete, gone from the API, its bookings kept."""
    past = insert_booking(intro, datetime.now(UTC) - timedelta(days=3))
    insert_booking(intro, datetime.now(UTC) + timedelta(days=3), status=Booking.CANCELLED)
    path = f"/api/v1/event-types/{intro.id}"
    response = client.delete(path, headers=headers)
    assert (response.status_code, response.data) == (204, b"")
    db.session.refresh(intro)
    assert intro.archived_at is not None and intro.active is False
    assert db.session.get(Booking, past.id) is not None
    assert error_of(client.get(path, headers=headers)) == (404, "not_found", None)
    assert error_of(client.patch(path, json={"active": True}, headers=headers))[0] == 404
    assert error_of(client.delete(path, headers=headers)) == (404, "not_found", None)
    assert client.get("/api/v1/event-types", headers=headers).json == {"event_types": []}
    assert client.get("/api/v1/experts/ann/event-types").json == {"event_types": []}
    assert client.get(f"/api/v1/event-types/{intro.id}/slots").status_code == 404
    listed = client.get("/api/v1/bookings?scope=past&role=expert", headers=headers).json
    assert [b["uid"] for b in listed["bookings"]] == [past.uid]
    # Its slug stays with it, so a restore brings the type back as it was.
    taken = client.post("/api/v1/event-types", json={**NEW, "slug": "intro"}, headers=headers)
    assert error_of(taken) == (422, "slug_taken", "slug")
    assert "archived" in taken.json["error"]["message"]


def test_another_experts_event_type_is_not_found(client, intro, make_user):
    bob = bearer(make_user("bob", expert=True))
    path = f"/api/v1/event-types/{intro.id}"
    assert error_of(client.get(path, headers=bob)) == (404, "not_found", None)
    patched = client.patch(path, json={"title": "Mine now"}, headers=bob)
    assert error_of(patched) == (404, "not_found", None)
    assert error_of(client.delete(path, headers=bob)) == (404, "not_found", None)
    assert client.get("/api/v1/event-types", headers=bob).json == {"event_types": []}
    assert db.session.get(EventType, intro.id).title == "Intro"


def test_an_unknown_event_type_is_not_found(client, headers):
    assert error_of(client.get("/api/v1/event-types/999", headers=headers))[0] == 404


@pytest.mark.parametrize(
    "header",
    [None, "Bearer nope", "Bearer ", "Basic YW5uOnNlY3JldA==", "eb_not-even-a-scheme"],
)
def test_no_or_bad_credentials_are_401(client, ann, header):
    headers = {"Authorization": header} if header else {}
    for response in (
        client.get("/api/v1/event-types", headers=headers),
        client.post("/api/v1/event-types", json=NEW, headers=headers),
    ):
        assert error_of(response) == (401, "unauthorized", None)


def test_a_revoked_token_is_401(client, ann, headers):
    assert client.get("/api/v1/event-types", headers=headers).status_code == 200
    db.session.execute(sa.update(ApiToken).values(revoked_at=utcnow()))
    db.session.commit()
    assert error_of(client.get("/api/v1/event-types", headers=headers))[0] == 401


def test_a_client_is_403(client, make_user):
    headers = bearer(make_user("cleo"))
    assert error_of(client.get("/api/v1/event-types", headers=headers))[:2] == (
        403,
        "not_an_expert",
    )
    assert client.post("/api/v1/event-types", json=NEW, headers=headers).status_code == 403


def test_the_browser_session_works_with_the_csrf_header(client, auth, ann):
    auth.login("ann")
    assert client.get("/api/v1/event-types").status_code == 200
    refused = client.post("/api/v1/event-types", json=NEW)
    assert error_of(refused) == (400, "csrf_failed", None)
    assert db.session.scalar(sa.select(sa.func.count(EventType.id))) == 0
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/").text)[1]
    created = client.post("/api/v1/event-types", json=NEW, headers={"X-CSRFToken": token})
    assert created.status_code == 201


def test_public_list_shows_active_event_types(client, ann, intro, make_event_type):
    make_event_type(ann, slug="hidden", active=False)
    response = client.get("/api/v1/experts/ann/event-types")
    assert response.status_code == 200
    assert response.json == {
        "event_types": [
            {
                "id": intro.id,
                "slug": "intro",
                "title": "Intro",
                "duration_minutes": 30,
                "description": "",
                "url": "http://testserver/ann/intro",
                "requires_confirmation": False,
                "questions": [],
            }
        ]
    }


def test_public_list_of_an_unknown_user_or_a_client_is_404(client, make_user):
    make_user("cleo")
    for username in ("nobody", "cleo"):
        response = client.get(f"/api/v1/experts/{username}/event-types")
        assert error_of(response) == (404, "not_found", None)


def test_create_list_and_delete_on_each_database(any_app, make_user):
    client = any_app.test_client()
    headers = bearer(make_user("ann", expert=True))
    created = client.post("/api/v1/event-types", json=NEW, headers=headers)
    assert created.status_code == 201
    again = client.post("/api/v1/event-types", json=NEW, headers=headers)
    assert error_of(again) == (422, "slug_taken", "slug")
    public = client.get("/api/v1/experts/ann/event-types").json["event_types"]
    assert [event_type["slug"] for event_type in public] == ["intro"]
    event_type = db.session.get(EventType, created.json["id"])
    insert_booking(event_type, datetime.now(UTC) + timedelta(days=2))
    path = f"/api/v1/event-types/{event_type.id}"
    assert client.delete(path, headers=headers).status_code == 409


def test_me_answers_the_callers_account(client, make_user):
    from expertbook.accounts import create_api_token
    from expertbook.extensions import db

    ann = make_user("ann", timezone="Asia/Kolkata")
    token = create_api_token(ann)
    db.session.commit()
    answer = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert answer.json == {
        "id": ann.id,
        "username": "ann",
        "email": "ann@example.com",
        "name": "",
        "timezone": "Asia/Kolkata",
        "is_expert": False,
    }
    assert client.get("/api/v1/me").status_code == 401


def test_a_booking_committed_while_removal_waits_keeps_the_type(pg_app, make_user, make_event_type):
    """Removal takes the booking lock: a booking whose transaction holds it when the removal
    starts is counted once it commits, so the type is neither deleted with it nor archived."""
    import psycopg2

    event_type = make_event_type(make_user("ann", expert=True), slug="intro", title="Intro")
    start = datetime.now(UTC) + timedelta(days=3)
    url = sa.make_url(str(db.engine.url)).set(drivername="postgresql")
    holder = psycopg2.connect(url.render_as_string(hide_password=False))
    try:
        with holder.cursor() as cursor:
            cursor.execute(
                'SELECT id FROM "user" WHERE id = %s FOR NO KEY UPDATE', (event_type.expert_id,)
            )
            cursor.execute(
                "INSERT INTO booking (uid, expert_id, event_type_id, name, email, notes,"
                " start_at, end_at, status, video_url, cancel_reason, sequence,"
                " manage_token_hash, created_at, updated_at) VALUES ('racer', %s, %s, 'Bo',"
                " 'bo@example.com', '', %s, %s, 'confirmed', '', '', 0, 'h', now(), now())",
                (event_type.expert_id, event_type.id, start, start + timedelta(minutes=30)),
            )
        committer = threading.Timer(0.5, holder.commit)
        committer.start()
        with pytest.raises(EventTypeError) as refused:
            remove_event_type(event_type, now=utcnow())
        committer.join()
    finally:
        holder.rollback()
        holder.close()
    assert refused.value.code == "has_upcoming_bookings"
    db.session.expire_all()
    assert db.session.get(EventType, event_type.id).archived_at is None
    assert db.session.scalar(sa.select(Booking.uid)) == "racer"


QUESTIONS = [
    {"id": "company", "label": "Your company", "kind": "text", "required": True},
    {"id": "goals", "label": "Your goals", "kind": "long_text", "required": False},
    {
        "id": "level",
        "label": "Your level",
        "kind": "choice",
        "required": False,
        "choices": ["Beginner", "Advanced"],
    },
    {"id": "terms", "label": "I accept the terms", "kind": "checkbox", "required": True},
]
ISSUE_18_FIELDS = {
    "requires_confirmation": True,
    "confirm_within_hours": 48,
    "max_per_day": 3,
    "max_per_week": 10,
    "questions": QUESTIONS,
}


def test_confirmation_limits_and_questions_round_trip(client, headers):
    created = client.post("/api/v1/event-types", json={**NEW, **ISSUE_18_FIELDS}, headers=headers)
    assert created.status_code == 201
    assert {name: created.json[name] for name in ISSUE_18_FIELDS} == ISSUE_18_FIELDS
    path = f"/api/v1/event-types/{created.json['id']}"
    assert client.get(path, headers=headers).json == created.json
    event_type = db.session.get(EventType, created.json["id"])
    assert (event_type.requires_confirmation, event_type.max_per_week) == (True, 10)
    assert event_type.questions == QUESTIONS
    cleared = {
        "requires_confirmation": False,
        "confirm_within_hours": None,
        "max_per_day": None,
        "max_per_week": None,
        "questions": [],
    }
    patched = client.patch(path, json=cleared, headers=headers)
    assert patched.status_code == 200
    assert patched.json == {**created.json, **cleared}
    assert client.get(path, headers=headers).json == patched.json


def test_questions_without_ids_get_them_from_their_labels(client, headers):
    questions = [
        {"label": "  Your company? "},
        {"label": "Your company?", "kind": "choice", "choices": [" A ", "B"], "required": True},
    ]
    created = client.post(
        "/api/v1/event-types", json={**NEW, "questions": questions}, headers=headers
    )
    assert created.json["questions"] == [
        {"id": "your-company", "label": "Your company?", "kind": "text", "required": False},
        {
            "id": "your-company-2",
            "label": "Your company?",
            "kind": "choice",
            "required": True,
            "choices": ["A", "B"],
        },
    ]


def test_ten_questions_are_allowed_eleven_are_not(client, headers, intro):
    path = f"/api/v1/event-types/{intro.id}"
    ten = [{"label": f"Question {i}"} for i in range(10)]
    assert len(client.patch(path, json={"questions": ten}, headers=headers).json["questions"]) == 10
    eleven = client.patch(path, json={"questions": [*ten, {"label": "One more"}]}, headers=headers)
    assert error_of(eleven) == (422, "invalid_field", "questions")
    assert "10" in eleven.json["error"]["message"]
    db.session.refresh(intro)
    assert len(intro.questions) == 10


def test_a_weekly_limit_below_the_daily_one_is_refused_against_the_saved_one(
    client, headers, intro
):
    path = f"/api/v1/event-types/{intro.id}"
    assert client.patch(path, json={"max_per_day": 4}, headers=headers).status_code == 200
    refused = client.patch(path, json={"max_per_week": 3}, headers=headers)
    assert error_of(refused) == (422, "invalid_field", "max_per_week")
    assert "4" in refused.json["error"]["message"]
    lowered = client.patch(path, json={"max_per_day": 5, "max_per_week": 5}, headers=headers)
    assert (lowered.json["max_per_day"], lowered.json["max_per_week"]) == (5, 5)
    # Raising the day's limit above a saved week's is refused the same way.
    refused = client.patch(path, json={"max_per_day": 6}, headers=headers)
    assert error_of(refused) == (422, "invalid_field", "max_per_week")
    db.session.refresh(intro)
    assert (intro.max_per_day, intro.max_per_week) == (5, 5)


def test_a_bad_question_in_a_patch_changes_nothing(client, headers, intro):
    path = f"/api/v1/event-types/{intro.id}"
    body = {"title": "Renamed", "requires_confirmation": True, "questions": [{"label": 5}]}
    refused = client.patch(path, json=body, headers=headers)
    assert error_of(refused) == (422, "invalid_field", "questions.0.label")
    db.session.refresh(intro)
    assert (intro.title, intro.requires_confirmation, intro.questions) == ("Intro", False, [])


def test_changing_the_new_fields_bumps_the_schedule_version(client, headers, ann, intro):
    path = f"/api/v1/event-types/{intro.id}"
    before = ann.schedule_version
    assert client.patch(path, json={"max_per_day": 2}, headers=headers).status_code == 200
    db.session.refresh(ann)
    assert ann.schedule_version > before


def test_public_list_shows_confirmation_and_questions(client, ann, make_event_type):
    make_event_type(ann, slug="vetted", requires_confirmation=True, questions=QUESTIONS)
    listed = client.get("/api/v1/experts/ann/event-types").json["event_types"]
    assert (listed[0]["requires_confirmation"], listed[0]["questions"]) == (True, QUESTIONS)
    assert "max_per_day" not in listed[0]
