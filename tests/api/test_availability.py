import re

import pytest

from tests.api import bearer

DAYS_OFF = {day: [] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
BERLIN = {
    "timezone": "Europe/Berlin",
    "weekly": {
        "mon": [["13:00", "17:00"], ["09:00", "12:00"]],
        "tue": [["09:00", "12:00"], ["12:00", "13:00"]],
        "fri": [["18:00", "24:00"]],
    },
    "overrides": [
        {"date": "2026-12-31", "intervals": [["10:00", "14:00"]]},
        {"date": "2026-12-24", "intervals": []},
    ],
}
# What BERLIN reads back as: every weekday, intervals sorted, overrides by date.
BERLIN_STATE = {
    "timezone": "Europe/Berlin",
    "weekly": {
        **DAYS_OFF,
        "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
        "tue": [["09:00", "12:00"], ["12:00", "13:00"]],
        "fri": [["18:00", "24:00"]],
    },
    "overrides": [
        {"date": "2026-12-24", "intervals": []},
        {"date": "2026-12-31", "intervals": [["10:00", "14:00"]]},
    ],
}


@pytest.fixture
def headers(make_user):
    return bearer(make_user("ann", expert=True))


def put(client, headers, body):
    return client.put("/api/v1/availability", json=body, headers=headers)


def test_a_new_expert_has_no_hours(client, headers):
    response = client.get("/api/v1/availability", headers=headers)
    assert response.status_code == 200
    assert response.json == {"timezone": "UTC", "weekly": DAYS_OFF, "overrides": []}


def test_put_replaces_and_answers_the_new_state(client, headers):
    response = put(client, headers, BERLIN)
    assert response.status_code == 200
    assert response.json == BERLIN_STATE
    assert client.get("/api/v1/availability", headers=headers).json == BERLIN_STATE

    # Weekdays left out are days off; overrides left out stay as they were.
    replaced = put(
        client, headers, {"timezone": "Asia/Kolkata", "weekly": {"sat": [["08:00", "09:30"]]}}
    )
    assert replaced.json == {
        "timezone": "Asia/Kolkata",
        "weekly": {**DAYS_OFF, "sat": [["08:00", "09:30"]]},
        "overrides": BERLIN_STATE["overrides"],
    }
    cleared = put(client, headers, {"timezone": "UTC", "weekly": {}, "overrides": []})
    assert cleared.json == {"timezone": "UTC", "weekly": DAYS_OFF, "overrides": []}


def test_overrides_can_be_replaced_on_the_same_dates(client, headers):
    put(client, headers, BERLIN)
    moved = {**BERLIN, "overrides": [{"date": "2026-12-24", "intervals": [["09:00", "10:00"]]}]}
    response = put(client, headers, moved)
    assert response.json["overrides"] == [{"date": "2026-12-24", "intervals": [["09:00", "10:00"]]}]


def week(**days):
    return {"timezone": "Europe/Berlin", "weekly": days}


def override(*items):
    return {"timezone": "Europe/Berlin", "weekly": {}, "overrides": list(items)}


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"weekly": {}}, "timezone", "missing_field"),
        ({"timezone": "Europe/Berlin"}, "weekly", "missing_field"),
        ({**week(), "timezone": "Mars/Olympus"}, "timezone", "invalid_field"),
        ({**week(), "timezone": "../../etc/passwd"}, "timezone", "invalid_field"),
        ({**week(), "timezone": 5}, "timezone", "invalid_field"),
        ({**week(), "colour": "red"}, "colour", "unknown_field"),
        ({"timezone": "UTC", "weekly": [["09:00", "17:00"]]}, "weekly", "invalid_field"),
        (week(funday=[]), "weekly.funday", "unknown_field"),
        (week(Mon=[]), "weekly.Mon", "unknown_field"),
        (week(mon="09:00-17:00"), "weekly.mon", "invalid_field"),
        (week(mon=None), "weekly.mon", "invalid_field"),
        (week(mon=["09:00", "17:00"]), "weekly.mon[0]", "invalid_field"),
        (week(mon=[["09:00"]]), "weekly.mon[0]", "invalid_field"),
        (week(mon=[["09:00", "12:00", "17:00"]]), "weekly.mon[0]", "invalid_field"),
        (week(mon=[["09:00", "12:00"], "13:00-17:00"]), "weekly.mon[1]", "invalid_field"),
        (week(tue=[["9:00", "17:00"]]), "weekly.tue[0]", "invalid_field"),
        (week(tue=[["09:00", 1020]]), "weekly.tue[0]", "invalid_field"),
        (week(tue=[["09:00", "17:60"]]), "weekly.tue[0]", "invalid_field"),
        (week(tue=[["09:00", "25:00"]]), "weekly.tue[0]", "invalid_field"),
        (week(tue=[["09:00", "24:01"]]), "weekly.tue[0]", "invalid_field"),
        (week(wed=[["17:00", "09:00"]]), "weekly.wed[0]", "invalid_field"),
        (week(wed=[["09:00", "09:00"]]), "weekly.wed[0]", "invalid_field"),
        (week(wed=[["24:00", "24:00"]]), "weekly.wed[0]", "invalid_field"),
        (week(thu=[["08:00", "09:00"], ["24:00", "23:00"]]), "weekly.thu[1]", "invalid_field"),
        (week(fri=[["09:00", "12:00"], ["11:00", "13:00"]]), "weekly.fri", "invalid_field"),
        (week(sun=[["00:00", "24:00"], ["10:00", "11:00"]]), "weekly.sun", "invalid_field"),
        ({**week(), "overrides": {}}, "overrides", "invalid_field"),
        ({**week(), "overrides": None}, "overrides", "invalid_field"),
        (override("2026-12-24"), "overrides[0]", "invalid_field"),
        (override({"intervals": []}), "overrides[0].date", "missing_field"),
        (override({"date": "2026-12-24"}), "overrides[0].intervals", "missing_field"),
        (override({"date": "2026-02-30", "intervals": []}), "overrides[0].date", "invalid_field"),
        (override({"date": "24.12.2026", "intervals": []}), "overrides[0].date", "invalid_field"),
        (override({"date": 20261224, "intervals": []}), "overrides[0].date", "invalid_field"),
        (
            override(
                {"date": "2026-12-24", "intervals": []}, {"date": "2026-12-24", "intervals": []}
            ),
            "overrides[1].date",
            "invalid_field",
        ),
        (
            override({"date": "2026-12-24", "intervals": "closed"}),
            "overrides[0].intervals",
            "invalid_field",
        ),
        (
            override({"date": "2026-12-24", "intervals": [["10:00", "09:00"]]}),
            "overrides[0].intervals[0]",
            "invalid_field",
        ),
        (
            override({"date": "2026-12-24", "intervals": [["09:00", "11:00"], ["10:00", "12:00"]]}),
            "overrides[0].intervals",
            "invalid_field",
        ),
        (
            override({"date": "2026-12-24", "intervals": [], "note": "Xmas"}),
            "overrides[0].note",
            "unknown_field",
        ),
    ],
)
def test_put_refuses_bad_input_and_changes_nothing(client, headers, body, field, code):
    put(client, headers, BERLIN)
    response = put(client, headers, body)
    assert response.status_code == 422
    assert (response.json["error"]["code"], response.json["error"]["field"]) == (code, field)
    assert client.get("/api/v1/availability", headers=headers).json == BERLIN_STATE


@pytest.mark.parametrize(
    "body",
    [
        {"json": [BERLIN]},
        {"json": "Europe/Berlin"},
        {"data": "{not json", "content_type": "application/json"},
        {"data": ""},
    ],
)
def test_a_body_that_is_not_an_object_is_400(client, headers, body):
    response = client.put("/api/v1/availability", headers=headers, **body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


def test_credentials_and_role(client, make_user):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        assert client.get("/api/v1/availability", headers=headers).status_code == 401
        assert put(client, headers, BERLIN).status_code == 401
    cleo = bearer(make_user("cleo"))
    assert client.get("/api/v1/availability", headers=cleo).status_code == 403
    assert put(client, cleo, BERLIN).status_code == 403


def test_the_browser_session_needs_the_csrf_header_to_put(client, auth, make_user):
    make_user("ann", expert=True)
    auth.login("ann")
    assert client.get("/api/v1/availability").json["timezone"] == "UTC"
    refused = client.put("/api/v1/availability", json=BERLIN)
    assert (refused.status_code, refused.json["error"]["code"]) == (400, "csrf_failed")
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/").text)[1]
    response = client.put("/api/v1/availability", json=BERLIN, headers={"X-CSRFToken": token})
    assert response.json == BERLIN_STATE


def test_round_trip_on_each_database(any_app, make_user):
    client = any_app.test_client()
    headers = bearer(make_user("ann", expert=True))
    assert put(client, headers, BERLIN).json == BERLIN_STATE
    again = put(client, headers, {**BERLIN, "overrides": BERLIN["overrides"][:1]})
    assert again.json["overrides"] == BERLIN_STATE["overrides"][1:]
    assert client.get("/api/v1/availability", headers=headers).json == again.json
