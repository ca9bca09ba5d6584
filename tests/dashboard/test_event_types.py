import re
from datetime import UTC, datetime, timedelta
from html import escape

import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.models import Booking, EventType
from tests.booking_fixtures import insert_booking
from tests.conftest import AuthActions
from tests.dashboard import assert_csp_clean, sign_in_expert

NEW = "/dashboard/event-types/new"

FORM = {
    "title": "Intro call",
    "slug": "intro",
    "duration_minutes": "45",
    "description": "Let us meet.",
    "location": "google_meet",
    "buffer_before_minutes": "5",
    "buffer_after_minutes": "10",
    "min_notice_minutes": "120",
    "max_days_ahead": "30",
    "slot_interval_minutes": "15",
    "active": "y",
}


@pytest.fixture
def expert(make_user, auth):
    return sign_in_expert(make_user, auth)


def event_types():
    return db.session.scalars(sa.select(EventType).order_by(EventType.id)).all()


def field_error(page: str, field: str) -> str:
    """The text of the error shown under `field` (the form macro's `<id>-error`)."""
    marker = f'id="{field}-error"><p class="field-error">'
    start = page.index(marker) + len(marker)
    return page[start : page.index("</p>", start)]


def test_create_with_every_field(client, auth, expert):
    response = auth.post(NEW, FORM)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard/"
    (saved,) = event_types()
    assert saved.expert_id == expert.id
    assert (saved.title, saved.slug, saved.description) == ("Intro call", "intro", "Let us meet.")
    assert (saved.duration_minutes, saved.location, saved.active) == (45, "google_meet", True)
    assert (saved.buffer_before_minutes, saved.buffer_after_minutes) == (5, 10)
    assert (saved.min_notice_minutes, saved.max_days_ahead) == (120, 30)
    assert saved.slot_interval_minutes == 15
    page = client.get("/dashboard/").text
    assert "“Intro call” created" in page
    assert "http://testserver/ann/intro" in page


def test_new_form_offers_defaults_and_the_link(client, expert):
    page = client.get(NEW).text
    assert 'name="buffer_before_minutes" required step="1" type="number" value="0"' in page
    assert 'name="max_days_ahead" required step="1" type="number" value="60"' in page
    assert '<input checked id="active"' in page
    assert "http://testserver/ann/<strong data-slug-preview>your-slug</strong>" in page
    assert 'data-slug-source=""' in page and 'data-slug-target=""' in page
    for label in ("Title", "Duration (minutes)", "Location", "Start times every (minutes)"):
        assert f">{label}</label>" in page


def test_blank_interval_means_the_duration_and_unchecked_means_inactive(auth, expert):
    form = {**FORM, "slot_interval_minutes": ""}
    del form["active"]
    auth.post(NEW, form)
    (saved,) = event_types()
    assert saved.slot_interval_minutes is None
    assert saved.active is False


def test_edit(client, auth, expert, make_event_type):
    event_type = make_event_type(expert, title="Intro", slug="intro", slot_interval_minutes=10)
    path = f"/dashboard/event-types/{event_type.id}/edit"
    page = client.get(path).text
    assert 'value="Intro"' in page and 'name="slot_interval_minutes"' in page
    response = auth.post(path, {**FORM, "title": "Longer intro", "slot_interval_minutes": ""})
    assert response.headers["Location"] == "/dashboard/"
    db.session.refresh(event_type)
    assert (event_type.title, event_type.slug, event_type.duration_minutes) == (
        "Longer intro",
        "intro",
        45,
    )
    assert event_type.slot_interval_minutes is None


ERRORS = [
    pytest.param("slug", "taken", "You already use this slug.", id="duplicate-slug"),
    pytest.param(
        "slug", "Bad Slug!", "Use lowercase letters, digits and single hyphens.", id="bad-slug"
    ),
    pytest.param("slug", "", "Must not be empty.", id="missing-slug"),
    pytest.param("duration_minutes", "0", "Must be between 5 and 720.", id="duration-0"),
    pytest.param("duration_minutes", "10000", "Must be between 5 and 720.", id="duration-huge"),
    pytest.param("duration_minutes", "", "Enter a whole number.", id="duration-missing"),
    pytest.param("duration_minutes", "half", "Not a valid integer value.", id="duration-text"),
    pytest.param("buffer_before_minutes", "-5", "Must be between 0 and 720.", id="negative-buffer"),
    pytest.param("buffer_after_minutes", "721", "Must be between 0 and 720.", id="huge-buffer"),
    pytest.param("min_notice_minutes", "-1", "Must be between 0 and 525600.", id="negative-notice"),
    pytest.param("max_days_ahead", "0", "Must be between 1 and 730.", id="no-days-ahead"),
    pytest.param("slot_interval_minutes", "1", "Must be between 5 and 720.", id="tiny-interval"),
    pytest.param("title", "x" * 500, "At most 120 characters.", id="huge-title"),
    pytest.param("title", "", "Must not be empty.", id="missing-title"),
    pytest.param("title", "   ", "Must not be empty.", id="blank-title"),
    pytest.param("location", "skype", "Must be one of: zoom, google_meet.", id="bad-location"),
]


@pytest.mark.parametrize(("field", "value", "message"), ERRORS)
def test_create_refusals_show_on_their_field(
    client, auth, expert, make_event_type, field, value, message
):
    make_event_type(expert, title="Taken", slug="taken")
    response = auth.post(NEW, {**FORM, field: value})
    assert response.status_code == 200
    page = response.text
    assert field_error(page, field) == escape(message)
    assert page.count('class="field-error"') == 1
    assert re.search(f'aria-describedby="[^"]*\\b{field}-error"', page)
    assert [e.slug for e in event_types()] == ["taken"]
    # What the user typed is still there.
    assert 'value="Let us meet.' in page or "Let us meet." in page
    assert_csp_clean(page)


@pytest.mark.parametrize(("field", "value", "message"), ERRORS)
def test_edit_refusals_change_nothing(client, auth, expert, make_event_type, field, value, message):
    make_event_type(expert, title="Taken", slug="taken")
    event_type = make_event_type(expert, title="Intro", slug="intro")
    path = f"/dashboard/event-types/{event_type.id}/edit"
    response = auth.post(path, {**FORM, field: value})
    assert response.status_code == 200
    assert field_error(response.text, field) == escape(message)
    db.session.expire_all()
    assert (event_type.title, event_type.slug, event_type.duration_minutes) == (
        "Intro",
        "intro",
        30,
    )
    assert event_type.location == "zoom"


def test_deactivate_and_activate(client, auth, expert, make_event_type):
    event_type = make_event_type(expert, title="Intro", slug="intro")
    path = f"/dashboard/event-types/{event_type.id}/toggle"
    response = auth.post(path, token_from="/dashboard/")
    assert response.headers["Location"] == "/dashboard/"
    db.session.refresh(event_type)
    assert event_type.active is False
    assert "“Intro” is now inactive" in client.get("/dashboard/").text
    auth.post(path, token_from="/dashboard/")
    db.session.refresh(event_type)
    assert event_type.active is True


def test_delete(client, auth, expert, make_event_type):
    event_type = make_event_type(expert, title="Intro", slug="intro")
    response = auth.post(f"/dashboard/event-types/{event_type.id}/delete", token_from="/dashboard/")
    assert response.headers["Location"] == "/dashboard/"
    assert event_types() == []
    assert "“Intro” deleted." in client.get("/dashboard/").text


def test_an_upcoming_booking_keeps_its_type(client, auth, expert, make_event_type):
    """Issue 16, finding 6: the card offers neither Delete nor Archive, and says why."""
    event_type = make_event_type(expert, title="Intro", slug="intro")
    insert_booking(event_type, datetime.now(UTC) + timedelta(days=1))
    page = client.get("/dashboard/").text
    assert "1 upcoming booking: it can be archived once it is over or cancelled." in page
    assert f"/dashboard/event-types/{event_type.id}/delete" not in page
    response = auth.post(f"/dashboard/event-types/{event_type.id}/delete", token_from="/dashboard/")
    assert response.headers["Location"] == "/dashboard/"
    db.session.refresh(event_type)
    assert (event_types(), event_type.active, event_type.archived_at) == ([event_type], True, None)
    assert "This event type has upcoming bookings" in client.get("/dashboard/").text


def test_a_type_never_booked_says_delete_before_it_deletes(client, expert, make_event_type):
    make_event_type(expert, title="Intro", slug="intro")
    page = client.get("/dashboard/").text
    assert 'data-confirm="Delete “Intro”? It has never been booked; this cannot be undone."' in (
        page
    )
    assert "Archive<span" not in page


def test_a_type_booked_only_in_the_past_or_cancelled_is_archived(
    client, auth, expert, make_event_type, make_user
):
    """The dialog names the archive before it happens; the bookings keep their pages, the
    public page and link stop offering the type, and the dashboard lists it apart."""
    event_type = make_event_type(expert, title="Intro", slug="intro")
    other = make_event_type(expert, title="Deep dive", slug="deep-dive")
    past = insert_booking(event_type, datetime.now(UTC) - timedelta(days=2))
    insert_booking(event_type, datetime.now(UTC) + timedelta(days=2), status=Booking.CANCELLED)
    page = client.get("/dashboard/").text
    assert (
        "Archive “Intro”? It leaves your public page and its link takes no more bookings. "
        "Its past or cancelled bookings keep their details." in page
    )
    response = auth.post(f"/dashboard/event-types/{event_type.id}/delete", token_from="/dashboard/")
    assert response.headers["Location"] == "/dashboard/"
    db.session.refresh(event_type)
    assert event_type.archived_at is not None and event_type.active is False
    page = client.get("/dashboard/").text
    assert "“Intro” archived. Its bookings keep their details." in page
    archived = page[page.index('id="archived-heading"') :]
    assert "Intro" in archived and "Restore<span" in archived
    assert f"/dashboard/event-types/{event_type.id}/edit" not in page
    # The booking keeps its page and calendar file; My Bookings still lists it.
    assert client.get(f"/bookings/{past.uid}").status_code == 200
    assert "BEGIN:VEVENT" in client.get(f"/bookings/{past.uid}.ics").text
    assert past.uid in client.get("/bookings?scope=past").text
    # Nobody is offered it any more.
    assert "Intro" not in client.get(f"/{expert.username}").text
    closed = client.get(f"/{expert.username}/intro")
    assert closed.status_code == 404
    assert "Intro is no longer offered" in closed.text and "Deep dive" in closed.text
    # Not editable, toggled or removed again while archived.
    for action in ("edit", "toggle", "delete"):
        path = f"/dashboard/event-types/{event_type.id}/{action}"
        assert auth.post(path, FORM, token_from="/dashboard/").status_code == 404
    db.session.refresh(event_type)
    assert (event_type.title, event_type.active) == ("Intro", False)
    assert other.active is True


def test_an_archived_slug_stays_reserved_and_restore_brings_the_type_back(
    client, auth, expert, make_event_type
):
    event_type = make_event_type(expert, title="Intro", slug="intro")
    insert_booking(event_type, datetime.now(UTC) - timedelta(days=2))
    auth.post(f"/dashboard/event-types/{event_type.id}/delete", token_from="/dashboard/")
    page = auth.post(NEW, FORM, token_from=NEW).text
    assert "An archived event type uses this slug: restore it, or pick another." in page
    response = auth.post(
        f"/dashboard/event-types/{event_type.id}/restore", token_from="/dashboard/"
    )
    assert response.headers["Location"] == "/dashboard/"
    db.session.refresh(event_type)
    assert (event_type.archived_at, event_type.active) == (None, False)
    page = client.get("/dashboard/").text
    assert "“Intro” restored, inactive: activate it to take bookings." in page
    assert 'id="archived-heading"' not in page
    # Restoring what is not archived, or another expert's, is not found.
    path = f"/dashboard/event-types/{event_type.id}/restore"
    assert auth.post(path, token_from="/dashboard/").status_code == 404


def test_restore_needs_its_owner_and_a_csrf_token(client, auth, expert, make_user, make_event_type):
    theirs = make_event_type(make_user("cat", expert=True), title="Cats", slug="cats")
    theirs.active, theirs.archived_at = False, datetime.now(UTC)
    mine = make_event_type(expert, title="Intro", slug="intro")
    mine.active, mine.archived_at = False, datetime.now(UTC)
    db.session.commit()
    path = f"/dashboard/event-types/{theirs.id}/restore"
    assert auth.post(path, token_from="/dashboard/").status_code == 404
    assert client.post(f"/dashboard/event-types/{mine.id}/restore").status_code == 400
    db.session.expire_all()
    assert theirs.archived_at is not None and mine.archived_at is not None


@pytest.mark.parametrize(
    ("method", "action"),
    [("get", "edit"), ("post", "edit"), ("post", "delete"), ("post", "toggle")],
)
def test_another_experts_event_type_is_not_found(
    client, auth, expert, make_user, make_event_type, method, action
):
    theirs = make_event_type(make_user("cat", expert=True), title="Cats", slug="cats")
    for event_type_id in (theirs.id, theirs.id + 100):
        path = f"/dashboard/event-types/{event_type_id}/{action}"
        if method == "get":
            response = client.get(path)
        else:
            response = auth.post(path, {**FORM, "title": "Mine now"}, token_from="/dashboard/")
        assert response.status_code == 404
    db.session.expire_all()
    assert (theirs.title, theirs.active) == ("Cats", True)
    assert event_types() == [theirs]


@pytest.mark.parametrize("action", ["new", "1/edit", "1/delete", "1/toggle"])
def test_post_without_csrf_token_is_refused(client, expert, make_event_type, action):
    event_type = make_event_type(expert, title="Intro", slug="intro")
    response = client.post(f"/dashboard/event-types/{action}", data={**FORM, "title": "Changed"})
    assert response.status_code == 400
    db.session.expire_all()
    assert event_types() == [event_type]
    assert (event_type.title, event_type.active) == ("Intro", True)


def test_a_slug_taken_by_a_concurrent_request_is_a_field_error(pg_app, make_user, monkeypatch):
    """Two tabs create the same slug at once: the one whose check ran before the other's
    commit gets the form's message, not a 500 (the unique constraint decides)."""
    from expertbook.dashboard import routes

    client = pg_app.test_client()
    expert = sign_in_expert(make_user, AuthActions(client))
    save = routes.save_event_type

    def racing(*args, **kwargs):
        saved = save(*args, **kwargs)  # its check passed; now the other tab commits
        with db.engine.begin() as other:
            other.execute(
                sa.insert(EventType).values(
                    expert_id=expert.id, slug="intro", title="Other tab", duration_minutes=30
                )
            )
        return saved

    monkeypatch.setattr(routes, "save_event_type", racing)
    response = AuthActions(client).post(NEW, FORM)
    assert response.status_code == 200
    assert field_error(response.text, "slug") == escape("You already use this slug.")
    assert [e.title for e in event_types()] == ["Other tab"]


def test_booking_counts_read_no_more_than_the_upcoming_bookings(
    any_app, make_user, make_event_type
):
    """The dashboard's cost does not grow with history: "ever booked" is an EXISTS, and only
    confirmed bookings that may not be over yet are counted."""
    from expertbook.event_types import BookingCounts, booking_counts

    expert = make_user("coach", expert=True)
    old, busy, fresh = (make_event_type(expert, duration_minutes=60) for _ in range(3))
    now = datetime.now(UTC).replace(microsecond=0)
    for days in range(1, 6):
        insert_booking(old, now - timedelta(days=days))
    insert_booking(busy, now - timedelta(minutes=30))  # under way
    insert_booking(busy, now + timedelta(days=1))
    insert_booking(busy, now + timedelta(days=2), status=Booking.CANCELLED)
    statements = []

    def capture(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", capture)
    try:
        counts = booking_counts([old.id, busy.id, fresh.id], now)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", capture)
    assert counts == {old.id: BookingCounts(True, 0), busy.id: BookingCounts(True, 2)}
    (statement,) = [s for s in statements if "booking" in s]
    assert "EXISTS" in statement.upper() and "booking.start_at >" in statement


def question_rows(**rows) -> dict:
    """Form fields of the questions editor: question_rows(q0={...}, q3={...})."""
    data = {}
    for key, fields in rows.items():
        index = int(key[1:])
        for name, value in fields.items():
            data[f"questions-{index}-{name}"] = value
    return data


def test_create_with_confirmation_limits_and_questions(auth, expert):
    form = {
        **FORM,
        "requires_confirmation": "y",
        "confirm_within_hours": "24",
        "max_per_day": "2",
        "max_per_week": "5",
        **question_rows(
            q0={"label": "Your company", "kind": "text", "required": "y", "position": "2"},
            q1={"label": "", "kind": "text", "position": "3"},
            q2={
                "label": "Your level",
                "kind": "choice",
                "choices": "Beginner\r\n\r\n  Advanced \r\n",
                "position": "1",
            },
            q3={"label": "Newsletter?", "kind": "checkbox", "choices": "ignored", "position": "4"},
        ),
    }
    assert auth.post(NEW, form).status_code == 302
    (saved,) = event_types()
    assert (saved.requires_confirmation, saved.confirm_within_hours) == (True, 24)
    assert (saved.max_per_day, saved.max_per_week) == (2, 5)
    assert saved.questions == [
        {
            "id": "your-level",
            "label": "Your level",
            "kind": "choice",
            "required": False,
            "choices": ["Beginner", "Advanced"],
        },
        {"id": "your-company", "label": "Your company", "kind": "text", "required": True},
        {"id": "newsletter", "label": "Newsletter?", "kind": "checkbox", "required": False},
    ]


def test_new_form_has_the_new_fields_and_ten_question_rows(client, expert):
    page = client.get(NEW).text
    for label in (
        "Requires my confirmation: requests wait for my answer",
        "Answer requests within (hours)",
        "At most bookings a day",
        "At most bookings a week",
    ):
        assert f">{label}</label>" in page
    assert 'aria-describedby="requires_confirmation-help"' in page
    assert page.count("data-question-row") == 10
    assert page.count("data-spare") == 10
    assert '<label for="questions-0-label">Question</label>' in page
    assert '<label for="questions-9-choices">Choices, one per line</label>' in page
    assert 'aria-describedby="questions-0-choices-help"' in page
    assert 'name="questions-0-position"' in page and 'value="1"' in page
    # Only the first empty row is open; the rest wait behind a disclosure.
    assert "More questions (9 empty rows)" in page
    assert_csp_clean(page)


def test_edit_shows_the_questions_and_keeps_their_ids(client, auth, expert, make_event_type):
    questions = [
        {"id": "company", "label": "Company", "kind": "text", "required": True},
        {
            "id": "level",
            "label": "Level",
            "kind": "choice",
            "required": False,
            "choices": ["A", "B"],
        },
    ]
    event_type = make_event_type(expert, slug="intro", questions=questions, max_per_day=3)
    path = f"/dashboard/event-types/{event_type.id}/edit"
    page = client.get(path).text
    assert 'name="questions-0-id" type="hidden" value="company"' in page
    assert 'value="Company"' in page
    assert "A\nB</textarea>" in page
    assert 'name="max_per_day" step="1" type="number" value="3"' in page or 'value="3"' in page
    assert "Remove this question" in page
    assert page.count("data-spare") == 8
    # Renamed, moved first, and the company question removed.
    form = {
        **FORM,
        **question_rows(
            q0={
                "id": "company",
                "label": "Company",
                "kind": "text",
                "position": "1",
                "remove": "y",
            },
            q1={"id": "level", "label": "Your level", "kind": "choice", "choices": "A\nB\nC"},
        ),
        "max_per_day": "",
    }
    assert auth.post(path, form).status_code == 302
    db.session.refresh(event_type)
    assert event_type.questions == [
        {
            "id": "level",
            "label": "Your level",
            "kind": "choice",
            "required": False,
            "choices": ["A", "B", "C"],
        }
    ]
    assert event_type.max_per_day is None  # emptied on the form


QUESTION_ERRORS = [
    pytest.param(
        {"label": "x" * 201}, "label", "The question must be one line of 1 to 200 characters.",
        id="huge-label",
    ),
    pytest.param(
        {"label": "Level", "kind": "choice"}, "choices",
        "A choice question needs a list of choices.", id="choice-without-choices",
    ),
    pytest.param(
        {"label": "Level", "kind": "choice", "choices": "A\nA"}, "choices",
        "The choice “A” is given twice.", id="duplicate-choice",
    ),
    pytest.param(
        {"label": "Level", "kind": "date"}, "kind", "The kind must be one of: text, long_text,"
        " choice, checkbox.", id="bad-kind",
    ),
    pytest.param(
        {"label": "Level", "id": "Not An Id"}, "label",
        "The id must be 1 to 40 lowercase letters, digits, - or _.", id="bad-id",
    ),
    pytest.param({"label": "Level", "position": "first"}, "position", "Not a valid integer value.",
                 id="bad-position"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "field", "message"), QUESTION_ERRORS)
def test_a_bad_question_shows_on_its_row_and_nothing_is_saved(
    client, auth, expert, make_event_type, row, field, message
):
    event_type = make_event_type(expert, slug="intro", title="Intro")
    path = f"/dashboard/event-types/{event_type.id}/edit"
    form = {
        **FORM,
        "requires_confirmation": "y",
        "max_per_day": "4",
        **question_rows(q0={"label": "Fine question", "kind": "text"}, q1=row),
    }
    response = auth.post(path, form)
    assert response.status_code == 200
    page = response.text
    assert field_error(page, f"questions-1-{field}") == escape(message)
    assert page.count('class="field-error"') == 1
    assert re.search(f'aria-describedby="[^"]*\\bquestions-1-{field}-error"', page)
    assert 'class="question-row has-error"' in page
    db.session.expire_all()
    assert (event_type.requires_confirmation, event_type.max_per_day) == (False, None)
    assert event_type.questions == []
    assert event_type.title == "Intro"


LIMIT_ERRORS = [
    pytest.param("confirm_within_hours", "0", "Must be between 1 and 720.", id="no-hours"),
    pytest.param("confirm_within_hours", "721", "Must be between 1 and 720.", id="many-hours"),
    pytest.param("confirm_within_hours", "soon", "Not a valid integer value.", id="hours-text"),
    pytest.param("max_per_day", "0", "Must be between 1 and 1000.", id="day-0"),
    pytest.param("max_per_day", "1001", "Must be between 1 and 1000.", id="day-huge"),
    pytest.param("max_per_week", "-1", "Must be between 1 and 1000.", id="week-negative"),
    pytest.param("max_per_week", "2", "Must be at least the daily limit (3), or empty.",
                 id="week-lt-day"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value", "message"), LIMIT_ERRORS)
def test_bad_limits_show_on_their_field(client, auth, expert, field, value, message):
    response = auth.post(NEW, {**FORM, "max_per_day": "3", field: value})
    assert response.status_code == 200
    assert field_error(response.text, field) == escape(message)
    assert response.text.count('class="field-error"') == 1
    assert event_types() == []


def test_a_tampered_form_with_more_than_ten_rows_keeps_ten(auth, expert):
    rows = {f"q{i}": {"label": f"Question {i}", "position": str(i + 1)} for i in range(12)}
    assert auth.post(NEW, {**FORM, **question_rows(**rows)}).status_code == 302
    (saved,) = event_types()
    assert [q["label"] for q in saved.questions] == [f"Question {i}" for i in range(10)]


def test_saving_the_new_fields_bumps_the_schedule_version(auth, expert, make_event_type):
    event_type = make_event_type(expert, slug="intro")
    before = expert.schedule_version
    path = f"/dashboard/event-types/{event_type.id}/edit"
    assert auth.post(path, {**FORM, "max_per_week": "7"}).status_code == 302
    db.session.refresh(expert)
    assert expert.schedule_version > before
