"""What the booking page makes once instead of per day or slot (links.py, the calendar's
grouping, slots.offer_days): the same as made one at a time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from flask import render_template_string, url_for

from expertbook.extensions import db
from expertbook.holds import place_hold
from expertbook.public.calendar import last_day_of, slots_by_day
from expertbook.public.links import query_link, zone_menu
from expertbook.scheduling import Interval, canonical_zones, zone
from expertbook.slots import offer, offer_days
from tests.public import london, london_expert, next_week


def grouped_one_by_one(slots: list[Interval], tz: str) -> dict[date, list[Interval]]:
    grouped: dict[date, list[Interval]] = {}
    for slot in slots:
        grouped.setdefault(slot.start.astimezone(zone(tz)).date(), []).append(slot)
    return grouped


@pytest.mark.parametrize("tz", [*canonical_zones(), "Asia/Beirut", "America/Havana"])
def test_slots_by_day_groups_as_one_at_a_time(tz):
    # Every 20 minutes round the clock for five weeks around the spring and autumn changes
    # of both hemispheres, some missing.
    for first in (datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 9, 20, tzinfo=UTC)):
        steps = [n for n in range(35 * 72) if n % 7 != 3]
        step = timedelta(minutes=20)
        slots = [Interval(first + step * n, first + step * n + step) for n in steps]
        assert slots_by_day(slots, tz) == grouped_one_by_one(slots, tz)
        assert list(slots_by_day(slots, tz)) == list(grouped_one_by_one(slots, tz))


def test_slots_by_day_takes_slots_in_any_order():
    day = datetime(2026, 12, 1, 23, tzinfo=UTC)
    slots = [Interval(day, day), Interval(day - timedelta(hours=20), day)]
    assert slots_by_day(slots, "Asia/Tokyo") == grouped_one_by_one(slots, "Asia/Tokyo")


@pytest.mark.parametrize(
    "endpoint, key, value, tz",
    [
        ("public.booking_page", "date", "2026-12-24", "Europe/Berlin"),
        ("public.confirm", "start", "2026-12-24T09:30:00Z", "America/Argentina/Buenos_Aires"),
        ("public.confirm", "start", "a b&c=d/é", "Etc/GMT+5"),
    ],
)
def test_a_query_link_is_url_for(app, endpoint, key, value, tz):
    path = {"username": "ann", "slug": "intro-call"}
    with app.test_request_context():
        expected = url_for(endpoint, **path, **{key: value}, tz=tz)
        assert query_link(endpoint, key, path, tz=tz)(value) == expected


MENU = """{% for name in timezone_choices(tz) %}<option value="{{ name }}"{% if name == tz %} selected{% endif %}>{{ name | zone_label }}</option>{% endfor %}"""  # noqa: E501


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/Port-au-Prince", "Etc/GMT+5"])
def test_the_zone_menu_is_the_templates_loop(app, tz):
    with app.test_request_context():
        assert str(zone_menu(tz)) == render_template_string(MENU, tz=tz)


def whole_month(event_type, first: date, tz: str, now: datetime, holder=None):
    """What the page showed before offer_days: the whole month offered, grouped by day."""
    offered = offer(
        event_type, day_from=first, day_to=last_day_of(first), viewer_tz=tz, now=now, holder=holder
    )
    return grouped_one_by_one(offered.slots, tz), grouped_one_by_one(offered.held, tz)


@pytest.mark.parametrize("limits", [{}, {"max_per_day": 1}, {"max_per_week": 3}])
def test_offer_days_is_the_whole_month_by_day(app, make_user, make_event_type, limits):
    intro = london_expert(make_user, make_event_type, **limits)
    day = next_week()
    now = datetime.now(UTC)
    # Booked and held times in the week (a hold blocks like a booking of its own type).
    place_hold(
        intro.id, london(day, 10), holder_session_key="someone", address="192.0.2.1", now=now
    )
    place_hold(
        intro.id, london(day + timedelta(days=1), 9), holder_session_key="other",
        address="192.0.2.2", now=now,
    )  # fmt: skip
    db.session.commit()
    first = day.replace(day=1)
    for tz in ("Europe/London", "Pacific/Kiritimati", "America/Anchorage"):
        slots, held = whole_month(intro, first, tz, now)
        assert sum(map(len, held.values())) == 2 and len(slots) > 2
        for chosen in (None, day, day + timedelta(days=1), first):
            got = offer_days(
                intro, day_from=first, day_to=last_day_of(first), day=chosen, viewer_tz=tz, now=now
            )
            assert got.days == set(slots)
            expected_day = min(slots, default=None) if chosen is None else chosen
            assert got.day == expected_day
            assert got.slots == slots.get(expected_day, [])
            assert got.held == held.get(expected_day, [])
