"""The expert's page and the booking page, without JavaScript."""

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from expertbook.extensions import db
from expertbook.public.calendar import last_day_of, shift_month
from tests.public import london, london_expert, next_week, slots_on, zulu

NY = "America/New_York"


@pytest.fixture
def intro(make_user, make_event_type):
    return london_expert(make_user, make_event_type)


def cal_days(page: str, css_class: str) -> set[date]:
    """The data-date of every calendar day carrying `css_class`."""
    days = set()
    for tag in re.findall(r"<(?:a|span) class=\"cal-day[^\"]*\"[^>]*>", page):
        classes = re.search(r'class="([^"]+)"', tag).group(1).split()
        found = re.search(r'data-date="([^"]+)"', tag)
        if css_class in classes and found:
            days.add(date.fromisoformat(found.group(1)))
    return days


def test_expert_page_lists_active_event_types(client, intro, make_event_type):
    make_event_type(intro.expert, slug="hidden", title="Old format", active=False)
    page = client.get("/ann").text
    assert "Ann Expert" in page and "Coach" in page
    assert 'href="/ann/intro"' in page and "Intro call" in page
    assert "Old format" not in page


@pytest.mark.parametrize("path", ["/nobody", "/bob", "/bob/intro", "/nobody/intro"])
def test_unknown_users_and_non_experts_are_404(client, intro, make_user, path):
    make_user("bob")  # signed up, but not an expert
    assert client.get(path).status_code == 404


def test_inactive_and_unknown_event_types_are_404(client, intro, make_event_type):
    make_event_type(intro.expert, slug="paused", active=False)
    assert client.get("/ann/paused").status_code == 404
    assert client.get("/ann/nope").status_code == 404
    assert client.get("/ann/paused/book").status_code == 404


def test_booking_page_hand_worked_day_in_new_york(client, intro):
    """London 09:00-12:00 is New York 04:00-07:00 (03:00/05:00 in the weeks the two
    countries' clocks change on different dates): six 30-minute slots on the same date."""
    day = next_week()
    response = client.get(f"/ann/intro?date={day}&tz={NY}")
    assert response.status_code == 200
    page = response.text
    expected = [london(day, 9) + timedelta(minutes=30 * i) for i in range(6)]
    slots = slots_on(page)
    assert [start for start, _, _ in slots] == [zulu(s) for s in expected]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00Z", start) for start, _, _ in slots)
    ny_labels = [s.astimezone(ZoneInfo(NY)).strftime("%H:%M") for s in expected]
    assert [label for _, _, label in slots] == ny_labels
    assert ny_labels[0] in {"03:00", "04:00", "05:00"}
    assert slots[0][1] == f"/ann/intro/book?start={zulu(expected[0])}&tz={NY}"
    # Every element offering a time carries its UTC start.
    assert page.count('class="slot"') == page.count("data-start=") == 6
    assert cal_days(page, "selected") == {day}
    assert 'data-tz="America/New_York"' in page and f'data-day="{day}"' in page
    assert f'data-event-type-id="{intro.id}"' in page and 'data-duration="30"' in page


def test_date_param_opens_that_day_and_its_month(client, intro):
    day = next_week(4)  # a Friday
    page = client.get(f"/ann/intro?date={day}&tz=Europe/London").text
    assert [label for _, _, label in slots_on(page)] == [
        "09:00", "09:30", "10:00", "10:30", "11:00", "11:30"
    ]  # fmt: skip
    assert day.strftime("%B %Y") in page
    assert f'data-month="{day:%Y-%m}"' in page


def test_a_day_without_slots_shows_none(client, intro):
    saturday = next_week(5)
    page = client.get(f"/ann/intro?date={saturday}&tz=Europe/London").text
    assert slots_on(page) == []
    assert "No free times on this day." in page
    assert cal_days(page, "selected") == {saturday}


def test_month_grid_marks_exactly_the_days_with_slots(client, intro):
    intro.max_days_ahead = 365
    db.session.commit()
    month = shift_month(next_week().replace(day=1), 2)  # wholly in the future
    page = client.get(f"/ann/intro?month={month:%Y-%m}&tz={NY}").text
    weekdays = {
        month + timedelta(days=i)
        for i in range(last_day_of(month).day)
        if (month + timedelta(days=i)).weekday() < 5
    }
    assert cal_days(page, "has-slots") == weekdays
    disabled = cal_days(page, "disabled")
    assert disabled == {month + timedelta(days=i) for i in range(last_day_of(month).day)} - weekdays
    # Days without times say so in words (hidden text: aria-label is not for plain spans).
    assert page.count(", no times</span>") == len(disabled)
    for day in weekdays:
        assert f'href="/ann/intro?date={day}&amp;tz=America/New_York"' in page
    # No day picked: the first day with slots is shown.
    first = min(weekdays)
    assert cal_days(page, "selected") == {first}
    assert slots_on(page)[0][0] == zulu(london(first, 9))
    assert (
        f"month={shift_month(month, -1):%Y-%m}" in page
        and f"month={shift_month(month, 1):%Y-%m}" in page
    )
    assert f'data-nav="prev" data-month="{shift_month(month, -1):%Y-%m}"' in page


def test_past_days_are_disabled_and_today_outlined(client, intro):
    page = client.get(f"/ann/intro?tz={NY}").text
    (today,) = cal_days(page, "today")
    assert today == datetime.now(UTC).astimezone(ZoneInfo(NY)).date()
    past = {d for d in cal_days(page, "disabled") if d < today}
    assert past == {today.replace(day=d) for d in range(1, today.day)}
    assert not any(d < today for d in cal_days(page, "has-slots"))
    # This month: nothing to go back to.
    assert '<span class="cal-nav" data-nav="prev" aria-disabled="true"' in page


def test_next_month_link_stops_at_the_booking_horizon(client, intro):
    intro.max_days_ahead = 1
    db.session.commit()
    page = client.get(f"/ann/intro?month={next_week():%Y-%m}&tz={NY}").text
    assert '<span class="cal-nav" data-nav="next" aria-disabled="true"' in page


def test_default_zone_is_the_experts_then_the_signed_in_users(client, auth, intro, make_user):
    assert 'data-tz="Europe/London"' in client.get("/ann/intro").text
    assert 'data-tz-in-url="false"' in client.get("/ann/intro").text
    make_user("carl", timezone="Asia/Tokyo")
    auth.login("carl")
    page = client.get("/ann/intro").text
    assert 'data-tz="Asia/Tokyo"' in page
    assert '<option value="Asia/Tokyo" selected>' in page


@pytest.mark.parametrize(
    "query",
    [
        "date=2026-02-30",
        "date=yesterday",
        "date=0001-01-01",
        "date=9999-12-31",
        "month=2026-13",
        "month=0001-01",
        "month=9999-12",
        "month=" + "9" * 500,
        "date=&month=&tz=",
        "tz=Not/AZone",
        "tz=../../etc/passwd",
        "tz=" + "x" * 500,
        "tz=Europe/London%00",
        "date=2026-12-01&month=garbage&tz=UTC",
    ],
)
def test_bad_params_never_fail(client, intro, query):
    response = client.get(f"/ann/intro?{query}")
    assert response.status_code == 200
    assert 'class="booking-layout"' in response.text


@pytest.mark.parametrize("tz", ["Not/AZone", "../../etc/passwd", "x" * 500])
def test_bad_zone_falls_back_with_a_notice(client, intro, tz):
    page = client.get(f"/ann/intro?tz={tz}").text
    assert "Unknown time zone" in page
    assert 'data-tz="Europe/London"' in page
    assert "x" * 41 not in page  # never a huge echo
    assert 'data-tz-in-url="false"' in page


def test_zone_selector_is_a_get_form_of_known_zones(client, intro):
    page = client.get(f"/ann/intro?tz={NY}&date={next_week()}").text
    form = re.search(r'<form class="tz-select" method="get"[^>]*>(.*?)</form>', page, re.S)
    assert form, "no zone selector"
    assert 'name="tz"' in form.group(1) and 'type="submit"' in form.group(1)
    assert f'name="date" value="{next_week()}"' in form.group(1)
    assert '<option value="America/New_York" selected>' in form.group(1)


def test_page_loads_scripts_from_files_only(client, intro):
    page = client.get("/ann/intro").text
    # Each file's URL carries its content's hash, so a year's cache never serves an old one.
    assert re.search(
        r'<script src="/static/vendor/socket.io/socket.io.min.js\?v=[0-9a-f]{12}"></script>', page
    )
    assert re.search(r'<script src="/static/js/booking.js\?v=[0-9a-f]{12}"></script>', page)
    assert 'data-slots-url="/api/v1/event-types/' in page


@pytest.mark.parametrize("path", ["/", "/ann", "/ann/intro", "/ann/intro?tz=Bad/Zone", "book"])
def test_no_inline_script_style_or_handlers(client, intro, path):
    if path == "book":
        page = client.get(f"/ann/intro?date={next_week()}&tz={NY}").text
        path = slots_on(page)[0][1]
    response = client.get(path)
    assert response.status_code == 200
    page = response.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "path, location",
    [("/ann/", "/ann"), ("/ann/intro/", "/ann/intro"), ("/ann/intro/?tz=UTC", "/ann/intro?tz=UTC")],
)
def test_a_trailing_slash_redirects(client, intro, path, location):
    """Issue 16, finding 5."""
    response = client.get(path)
    assert response.status_code == 308
    assert response.headers["Location"] == location


def test_not_found_pages_say_what_is_missing(client, intro, make_event_type):
    """Issue 16, finding 5: not the generic "check your spelling"."""
    make_event_type(intro.expert, slug="paused", title="Paused call", active=False)
    assert "Nobody here takes bookings as “nobody”" in client.get("/nobody").text
    assert "has no event type “nope”" in client.get("/ann/nope").text
    page = client.get("/ann/paused").text
    assert "Paused call is not taking bookings right now" in page
    assert 'href="/ann/intro"' in page
