"""offered_slots(first_of_each_day=True), what the booking page's month calendar marks: the
first offered slot of each of the viewer's days, found without making the others."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given

from expertbook.scheduling import Availability, Interval, SlotRules, offered_slots, zone
from tests.scheduling.test_slots_properties import PROPERTY_SETTINGS, scenarios


def firsts_of(slots: list[Interval], viewer_tz: str) -> list[Interval]:
    by_day: dict[date, Interval] = {}
    for slot in slots:
        by_day.setdefault(slot.start.astimezone(zone(viewer_tz)).date(), slot)
    return list(by_day.values())


@PROPERTY_SETTINGS
@given(scenarios())
def test_the_first_of_each_day_of_the_whole_list(scenario):
    availability, rules, busy, request = scenario
    whole = offered_slots(availability, rules, busy, **request)
    firsts = offered_slots(availability, rules, busy, **request, first_of_each_day=True)
    assert firsts == firsts_of(whole, request["viewer_tz"])


@pytest.mark.parametrize(
    "expert_tz, viewer_tz, day_from, day_to",
    [
        # Round the clock, across each kind of change: spring forward, fall back, half an
        # hour (Lord Howe), a change at midnight (Santiago, Havana), a day skipped (Apia 2011).
        ("UTC", "Europe/London", date(2026, 3, 27), date(2026, 4, 2)),
        ("Europe/London", "America/New_York", date(2026, 10, 22), date(2026, 11, 3)),
        ("Australia/Lord_Howe", "Australia/Lord_Howe", date(2026, 4, 1), date(2026, 4, 8)),
        ("America/Santiago", "America/Santiago", date(2026, 4, 1), date(2026, 4, 8)),
        ("America/Havana", "America/Havana", date(2026, 3, 5), date(2026, 3, 12)),
        ("UTC", "Pacific/Apia", date(2011, 12, 27), date(2012, 1, 2)),
    ],
)
def test_round_the_clock_across_offset_changes(expert_tz, viewer_tz, day_from, day_to):
    availability = Availability(expert_tz, {day: [(0, 1440)] for day in range(7)})
    rules = SlotRules(duration_minutes=15, max_days_ahead=20)
    now = datetime.combine(day_from, datetime.min.time(), UTC)
    request = {"now": now, "day_from": day_from, "day_to": day_to, "viewer_tz": viewer_tz}
    busy = [Interval(now.replace(hour=2), now.replace(hour=5))]
    whole = offered_slots(availability, rules, busy, **request)
    firsts = offered_slots(availability, rules, busy, **request, first_of_each_day=True)
    assert firsts == firsts_of(whole, viewer_tz)
    assert len(firsts) >= (day_to - day_from).days
