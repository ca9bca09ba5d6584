from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from expertbook.availability import availability_of, set_availability
from expertbook.extensions import db
from expertbook.models import DateOverride
from tests.dashboard import assert_csp_clean, sign_in_expert

PAGE = "/dashboard/availability"
OVERRIDES = "/dashboard/availability/overrides"
NEXT_YEAR = date.today().year + 1
CHRISTMAS = date(NEXT_YEAR, 12, 24)


@pytest.fixture
def expert(make_user, auth):
    return sign_in_expert(make_user, auth, timezone="Europe/Berlin")


def weekly_of(expert):
    db.session.expire_all()
    return {day: list(hours) for day, hours in availability_of(expert).weekly.items()}


def overrides_of(expert):
    db.session.expire_all()
    return {day: list(hours) for day, hours in availability_of(expert).overrides.items()}


def day_row(page: str, name: str) -> str:
    """The HTML of one weekday's row in the editor."""
    rows = page.split('<div class="weekday-row')
    (row,) = [row for row in rows if f">{name}</h3>" in row]
    return row


def hours(**days) -> dict:
    """Form data: hours(mon=[("09:00", "12:00")]) -> {"mon-start": [...], "mon-end": [...]}."""
    data = {"timezone": "Europe/Berlin"}
    for day, rows in days.items():
        data[f"{day}-start"] = [start for start, _ in rows]
        data[f"{day}-end"] = [end for _, end in rows]
    return data


def test_editor_without_hours(client, expert):
    page = client.get(PAGE).text
    assert '<option value="Europe/Berlin" selected>' in page
    for name in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
        row = day_row(page, name)
        # One empty row to fill in, labelled for screen readers.
        assert f'aria-label="{name} start 1"' in row and f'aria-label="{name} end 1"' in row
        assert f'aria-label="{name} start 2"' not in row
    assert "No overrides" in page
    assert 'for="override-date"' in page and 'for="override-day-off"' in page
    assert_csp_clean(page)


def test_save_two_intervals_on_monday(client, auth, expert):
    data = hours(mon=[("09:00", "12:00"), ("13:00", "17:00"), ("", "")], fri=[("", "")])
    response = auth.post(PAGE, data)
    assert response.status_code == 302
    assert response.headers["Location"] == PAGE
    assert weekly_of(expert) == {0: [(540, 720), (780, 1020)]}
    page = client.get(PAGE).text
    assert "Weekly hours saved." in page
    monday = day_row(page, "Monday")
    for value in ("09:00", "12:00", "13:00", "17:00"):
        assert f'value="{value}"' in monday
    # The saved intervals plus one spare row.
    assert 'aria-label="Monday start 3"' in monday and 'aria-label="Monday start 4"' not in monday


def test_saving_replaces_every_day_and_keeps_overrides(auth, expert):
    set_availability(expert, "Europe/Berlin", {1: [(540, 600)], 2: [(540, 600)]}, {CHRISTMAS: []})
    db.session.commit()
    auth.post(PAGE, hours(tue=[("10:00", "11:00")]))
    assert weekly_of(expert) == {1: [(600, 660)]}
    assert overrides_of(expert) == {CHRISTMAS: []}


def test_time_zone_is_saved(auth, expert):
    auth.post(PAGE, {**hours(), "timezone": "America/New_York"})
    db.session.expire_all()
    assert expert.timezone == "America/New_York"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [("09:00", "12:00"), ("11:00", "13:00")],
            "Intervals 09:00-12:00 and 11:00-13:00 overlap.",
        ),
        ([("12:00", "09:00")], "Interval 12:00-09:00 must end after it starts."),
        ([("09:00", "09:00")], "Interval 09:00-09:00 must end after it starts."),
        ([("09:00", "")], "Give each row both a start and an end time."),
        ([("9am", "5pm")], "“9am–5pm” is not a time range: use HH:MM."),
        ([("24:00", "00:00")], "“24:00–00:00” is not a time range: use HH:MM."),
    ],
)
def test_bad_hours_are_refused_next_to_their_day(client, auth, expert, rows, message):
    set_availability(expert, "Europe/Berlin", {4: [(600, 660)]})
    db.session.commit()
    data = hours(mon=[("08:00", "10:00")], wed=rows)
    response = auth.post(PAGE, {**data, "timezone": "Asia/Tokyo"})
    assert response.status_code == 200
    page = response.text
    wednesday = day_row(page, "Wednesday")
    assert f'<p class="field-error" id="wed-error">{message}</p>' in wednesday
    assert "weekday-row has-error" in page and page.count('class="field-error"') == 1
    assert 'aria-invalid="true" aria-describedby="wed-error"' in wednesday
    # Nothing saved, and nothing the user typed is lost.
    assert weekly_of(expert) == {4: [(600, 660)]}
    assert expert.timezone == "Europe/Berlin"
    for start, end in rows:
        assert f'name="wed-start" value="{start}"' in wednesday
        assert f'name="wed-end" value="{end}"' in wednesday
    assert 'name="mon-start" value="08:00"' in day_row(page, "Monday")
    assert '<option value="Asia/Tokyo" selected>' in page
    assert_csp_clean(page)


def test_every_bad_day_is_reported_at_once(auth, expert):
    data = hours(mon=[("12:00", "09:00")], sun=[("10:00", "")])
    page = auth.post(PAGE, data).text
    assert "must end after it starts" in day_row(page, "Monday")
    assert "both a start and an end" in day_row(page, "Sunday")


def test_unknown_time_zone_is_refused(auth, expert):
    response = auth.post(PAGE, {**hours(mon=[("09:00", "17:00")]), "timezone": "Mars/Olympus"})
    assert response.status_code == 200
    assert '<p class="field-error" id="timezone-error">Unknown time zone.</p>' in response.text
    assert 'name="mon-start" value="09:00"' in response.text
    assert weekly_of(expert) == {}
    assert expert.timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("start", "end", "saved"),
    [
        ("18:00", "00:00", (1080, 1440)),
        ("18:00", "24:00", (1080, 1440)),
        ("00:00", "00:00", (0, 1440)),
    ],
)
def test_an_end_of_midnight_closes_the_day(client, auth, expert, start, end, saved):
    auth.post(PAGE, hours(sat=[(start, end)]))
    assert weekly_of(expert) == {5: [saved]}
    # <input type="time"> cannot show 24:00: midnight closing reads 00:00 again.
    saturday = day_row(client.get(PAGE).text, "Saturday")
    assert 'name="sat-end" value="00:00"' in saturday
    assert "end to 00:00" in client.get(PAGE).text


def test_seconds_from_the_browser_are_accepted(auth, expert):
    auth.post(PAGE, hours(mon=[("09:00:00", "17:30:00")]))
    assert weekly_of(expert) == {0: [(540, 1050)]}


def test_a_day_off_override_is_saved_and_shown(client, auth, expert):
    set_availability(expert, "Europe/Berlin", {3: [(540, 1020)]})
    db.session.commit()
    response = auth.post(
        OVERRIDES, {"date": CHRISTMAS.isoformat(), "day_off": "y"}, token_from=PAGE
    )
    assert response.headers["Location"] == PAGE
    assert overrides_of(expert) == {CHRISTMAS: []}
    assert weekly_of(expert) == {3: [(540, 1020)]}
    page = client.get(PAGE).text
    assert CHRISTMAS.strftime("%a %d %b %Y") in page
    assert ">Day off<" in page


def test_an_extra_hours_override_is_saved_and_shown(client, auth, expert):
    data = {
        "date": CHRISTMAS.isoformat(),
        "override-start": ["10:00", "15:00", ""],
        "override-end": ["12:00", "00:00", ""],
    }
    auth.post(OVERRIDES, data, token_from=PAGE)
    assert overrides_of(expert) == {CHRISTMAS: [(600, 720), (900, 1440)]}
    assert "10:00–12:00, 15:00–24:00" in client.get(PAGE).text


def test_an_override_replaces_the_one_on_its_date(auth, expert):
    set_availability(expert, "Europe/Berlin", {}, {CHRISTMAS: [], CHRISTMAS + timedelta(1): []})
    db.session.commit()
    data = {"date": CHRISTMAS.isoformat(), "override-start": "09:00", "override-end": "10:00"}
    auth.post(OVERRIDES, data, token_from=PAGE)
    assert overrides_of(expert) == {CHRISTMAS: [(540, 600)], CHRISTMAS + timedelta(1): []}


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"date": "", "day_off": "y"}, "date", "Pick a date (YYYY-MM-DD)."),
        ({"date": "24.12.2030", "day_off": "y"}, "date", "Pick a date (YYYY-MM-DD)."),
        ({"date": "2030-12-24"}, "override", "Give the hours for this date, or tick Day off."),
        (
            {
                "date": "2030-12-24",
                "override-start": ["09:00", "10:00"],
                "override-end": ["11:00", "12:00"],
            },
            "override",
            "Intervals 09:00-11:00 and 10:00-12:00 overlap.",
        ),
        (
            {"date": "2030-12-24", "override-start": ["17:00"], "override-end": ["09:00"]},
            "override",
            "Interval 17:00-09:00 must end after it starts.",
        ),
    ],
)
def test_bad_overrides_are_refused(auth, expert, data, field, message):
    response = auth.post(OVERRIDES, data, token_from=PAGE)
    assert response.status_code == 200
    page = response.text
    error_id = "override-date-error" if field == "date" else "override-error"
    assert f'<p class="field-error" id="{error_id}">{message}</p>' in page
    assert overrides_of(expert) == {}
    assert f'value="{data["date"]}"' in page
    for value in data.get("override-start", []):
        assert f'name="override-start" value="{value}"' in page
    if "day_off" in data:
        assert 'data-day-off-toggle="override" checked' in page
    assert_csp_clean(page)


def test_remove_an_override(client, auth, expert):
    set_availability(
        expert, "Europe/Berlin", {0: [(540, 600)]}, {CHRISTMAS: [], date(2031, 1, 1): []}
    )
    db.session.commit()
    response = auth.post(f"{OVERRIDES}/{CHRISTMAS.isoformat()}/delete", token_from=PAGE)
    assert response.headers["Location"] == PAGE
    assert overrides_of(expert) == {date(2031, 1, 1): []}
    assert weekly_of(expert) == {0: [(540, 600)]}
    assert "removed" in client.get(PAGE).text
    assert auth.post(f"{OVERRIDES}/not-a-date/delete", token_from=PAGE).status_code == 404


def test_past_overrides_are_greyed(client, expert):
    set_availability(expert, "Europe/Berlin", {}, {date(2020, 1, 1): [], CHRISTMAS: []})
    db.session.commit()
    page = client.get(PAGE).text
    assert page.count('<tr class="is-past">') == 1
    assert (
        page.index("Wed 01 Jan 2020")
        < page.index('badge-muted">Past<')
        < page.index(CHRISTMAS.strftime("%a %d %b %Y"))
    )


@pytest.mark.parametrize(
    ("path", "data"),
    [
        (PAGE, hours(mon=[("09:00", "17:00")])),
        (OVERRIDES, {"date": "2030-12-24", "day_off": "y"}),
        (f"{OVERRIDES}/2030-12-25/delete", {}),
    ],
)
def test_post_without_csrf_token_is_refused(client, expert, path, data):
    set_availability(expert, "Europe/Berlin", {}, {date(2030, 12, 25): []})
    db.session.commit()
    assert client.post(path, data=data).status_code == 400
    assert weekly_of(expert) == {}
    assert overrides_of(expert) == {date(2030, 12, 25): []}
    assert db.session.scalar(sa.select(sa.func.count(DateOverride.id))) == 1


def test_an_override_for_a_past_date_is_refused_with_a_reason(auth, expert):
    """Issue 16, finding 16: it used to be saved without a word."""
    response = auth.post(OVERRIDES, {"date": "2001-01-01", "day_off": "y"}, token_from=PAGE)
    assert response.status_code == 200
    assert "That date has passed" in response.text
    assert overrides_of(expert) == {}
