"""`reminder_minutes` on event types: the API field and the dashboard form."""

from html import escape

import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.models import EventType
from tests.api import bearer
from tests.dashboard import sign_in_expert

NEW = {"title": "Intro call", "slug": "intro", "duration_minutes": 30}
FORM = {
    "title": "Intro call",
    "slug": "intro",
    "duration_minutes": "30",
    "location": "zoom",
    "buffer_before_minutes": "0",
    "buffer_after_minutes": "0",
    "min_notice_minutes": "0",
    "max_days_ahead": "60",
    "active": "y",
}


@pytest.fixture
def headers(make_user):
    return bearer(make_user("ann", expert=True))


def saved() -> list[int]:
    return db.session.scalar(
        sa.select(EventType).execution_options(populate_existing=True)
    ).reminder_minutes


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ([1440], [1440]),
        ([], []),
        ([60, 1440], [1440, 60]),  # the earliest reminder first
        ([5, 10080, 30], [10080, 30, 5]),
    ],
)
def test_the_api_takes_up_to_three_reminders(client, headers, given, stored):
    created = client.post(
        "/api/v1/event-types", json={**NEW, "reminder_minutes": given}, headers=headers
    )
    assert created.status_code == 201
    assert created.json["reminder_minutes"] == stored
    assert saved() == stored
    path = f"/api/v1/event-types/{created.json['id']}"
    assert client.get(path, headers=headers).json["reminder_minutes"] == stored


def test_the_api_defaults_to_a_day_before_and_patch_changes_it(client, headers):
    created = client.post("/api/v1/event-types", json=NEW, headers=headers)
    assert created.json["reminder_minutes"] == [1440]
    path = f"/api/v1/event-types/{created.json['id']}"
    patched = client.patch(path, json={"reminder_minutes": [120]}, headers=headers)
    assert (patched.status_code, patched.json["reminder_minutes"]) == (200, [120])
    untouched = client.patch(path, json={"title": "Renamed"}, headers=headers)
    assert untouched.json["reminder_minutes"] == [120]
    cleared = client.patch(path, json={"reminder_minutes": []}, headers=headers)
    assert cleared.json["reminder_minutes"] == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1440, "Must be a list of minutes"),
        (None, "Must be a list of minutes"),
        ("1440", "Must be a list of minutes"),
        ({"minutes": 1440}, "Must be a list of minutes"),
        ([1440, 60, 30, 15], "At most 3 reminders."),
        ([4], "between 5 and 10080"),
        ([10081], "between 5 and 10080"),
        ([-60], "between 5 and 10080"),
        ([60.5], "whole number"),
        (["60"], "whole number"),
        ([True], "whole number"),
        ([None], "whole number"),
        ([60, 60], "given once"),
    ],
)
def test_the_api_refuses_bad_reminders_with_422_and_changes_nothing(
    client, headers, value, message
):
    created = client.post("/api/v1/event-types", json=NEW, headers=headers).json
    response = client.post(
        "/api/v1/event-types",
        json={**NEW, "slug": "other", "reminder_minutes": value},
        headers=headers,
    )
    assert response.status_code == 422
    error = response.json["error"]
    assert (error["code"], error["field"]) == ("invalid_field", "reminder_minutes")
    assert message in error["message"]
    path = f"/api/v1/event-types/{created['id']}"
    patched = client.patch(path, json={"reminder_minutes": value}, headers=headers)
    assert (patched.status_code, patched.json["error"]["field"]) == (422, "reminder_minutes")
    assert saved() == [1440]
    assert db.session.scalar(sa.select(sa.func.count(EventType.id))) == 1


def test_the_form_offers_the_default_and_saves_a_list(client, auth, make_user):
    sign_in_expert(make_user, auth)
    page = client.get("/dashboard/event-types/new").text
    assert ">Reminders (minutes before, comma-separated)</label>" in page
    assert 'name="reminder_minutes"' in page and 'value="1440"' in page
    response = auth.post("/dashboard/event-types/new", {**FORM, "reminder_minutes": "60, 1440"})
    assert response.status_code == 302
    assert saved() == [1440, 60]
    (event_type,) = db.session.scalars(sa.select(EventType)).all()
    edit = client.get(f"/dashboard/event-types/{event_type.id}/edit").text
    assert 'value="1440, 60"' in edit


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("", []), ("  ", []), ("30 10080", [10080, 30]), ("120;15,", [120, 15])],
)
def test_the_form_reads_blank_as_none_and_spaces_as_separators(
    client, auth, make_user, typed, stored
):
    sign_in_expert(make_user, auth)
    response = auth.post("/dashboard/event-types/new", {**FORM, "reminder_minutes": typed})
    assert response.status_code == 302
    assert saved() == stored


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("a day", "“a” is not a whole number of minutes."),
        ("1440, 1.5", "“1.5” is not a whole number of minutes."),
        ("1", "Each reminder must be between 5 and 10080 minutes."),
        ("20000", "Each reminder must be between 5 and 10080 minutes."),
        ("-60", "Each reminder must be between 5 and 10080 minutes."),
        ("60, 30, 15, 5", "At most 3 reminders."),
        ("60, 60", "Each reminder time may be given once."),
        ("9" * 40, f"“{'9' * 20}” is not a whole number of minutes."),
    ],
)
def test_the_form_shows_bad_reminders_on_the_field_and_saves_nothing(
    client, auth, make_user, typed, message
):
    sign_in_expert(make_user, auth)
    response = auth.post("/dashboard/event-types/new", {**FORM, "reminder_minutes": typed})
    assert response.status_code == 200
    page = response.text
    assert f'id="reminder_minutes-error"><p class="field-error">{escape(message)}</p>' in page
    assert f'value="{escape(typed)}"' in page  # what was typed stays
    assert db.session.scalar(sa.select(sa.func.count(EventType.id))) == 0
