"""The pure month-grid helpers behind the booking page's calendar."""

from datetime import UTC, date, datetime

import pytest

from expertbook.public.calendar import (
    last_day_of,
    local_today,
    month_grid,
    month_key,
    parse_day,
    parse_month,
    shift_month,
    slots_by_day,
)
from expertbook.scheduling import Interval, UnknownTimeZone


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-12-01", date(2026, 12, 1)),
        ("2028-02-29", date(2028, 2, 29)),
        ("2026-02-29", None),
        ("2026-13-01", None),
        ("2026-1-1", None),
        ("20261201", None),
        ("2026-12-01T00:00", None),
        (" 2026-12-01", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_day(value, expected):
    assert parse_day(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-12", date(2026, 12, 1)),
        ("0001-01", date(1, 1, 1)),
        ("2026-00", None),
        ("2026-13", None),
        ("0000-05", None),
        ("2026-1", None),
        ("2026-12-01", None),
        ("x", None),
        (None, None),
    ],
)
def test_parse_month(value, expected):
    assert parse_month(value) == expected


@pytest.mark.parametrize(
    "month, by, expected",
    [
        (date(2026, 12, 1), 1, date(2027, 1, 1)),
        (date(2026, 1, 1), -1, date(2025, 12, 1)),
        (date(2026, 5, 1), 0, date(2026, 5, 1)),
        (date(2026, 5, 1), 14, date(2027, 7, 1)),
        (date(9999, 12, 1), 1, None),
        (date(1, 1, 1), -1, None),
    ],
)
def test_shift_month(month, by, expected):
    assert shift_month(month, by) == expected


def test_month_key_and_last_day():
    assert month_key(date(2026, 3, 1)) == "2026-03"
    assert last_day_of(date(2028, 2, 1)) == date(2028, 2, 29)
    assert last_day_of(date(2026, 12, 1)) == date(2026, 12, 31)


def test_month_grid_weeks_start_on_monday_and_pad_with_none():
    # December 2026 starts on a Tuesday and ends on a Thursday.
    weeks = month_grid(date(2026, 12, 1), [], today=date(2026, 11, 1))
    assert all(len(week) == 7 for week in weeks)
    assert len(weeks) == 5
    assert weeks[0][0] is None and weeks[0][1].day == date(2026, 12, 1)
    assert weeks[-1][3].day == date(2026, 12, 31) and weeks[-1][4:] == [None, None, None]
    days = [cell.day for week in weeks for cell in week if cell]
    assert days == [date(2026, 12, d) for d in range(1, 32)]


def test_month_grid_february_that_fills_exactly_four_weeks():
    weeks = month_grid(date(2027, 2, 1), [], today=date(2027, 1, 1))  # Monday to Sunday
    assert len(weeks) == 4 and None not in weeks[0] and None not in weeks[-1]


def test_month_grid_marks_slots_today_past_and_selection():
    today = date(2026, 12, 10)
    slot_days = [date(2026, 12, 9), date(2026, 12, 10), date(2026, 12, 15)]
    weeks = month_grid(date(2026, 12, 20), slot_days, today=today, selected=date(2026, 12, 15))
    cells = {cell.day: cell for week in weeks for cell in week if cell}
    # A past day is never offered, whatever the slot list says.
    assert [d for d, c in cells.items() if c.has_slots] == [date(2026, 12, 10), date(2026, 12, 15)]
    assert [d for d, c in cells.items() if c.is_today] == [today]
    assert [d for d, c in cells.items() if c.is_past] == [date(2026, 12, d) for d in range(1, 10)]
    assert [d for d, c in cells.items() if c.selected] == [date(2026, 12, 15)]


def test_slots_by_day_groups_by_the_viewers_local_date():
    def slot(hour):
        start = datetime(2026, 12, 1, hour, tzinfo=UTC)
        return Interval(start, start.replace(minute=30))

    slots = [slot(3), slot(4), slot(5), slot(23)]
    grouped = slots_by_day(slots, "America/New_York")  # UTC-5 in December
    assert grouped == {
        date(2026, 11, 30): [slot(3), slot(4)],
        date(2026, 12, 1): [slot(5), slot(23)],
    }
    assert list(slots_by_day(slots, "Asia/Tokyo")) == [date(2026, 12, 1), date(2026, 12, 2)]


def test_local_today_and_unknown_zone():
    now = datetime(2026, 12, 1, 2, tzinfo=UTC)
    assert local_today(now, "UTC") == date(2026, 12, 1)
    assert local_today(now, "America/Los_Angeles") == date(2026, 11, 30)
    with pytest.raises(UnknownTimeZone):
        local_today(now, "Nowhere/Land")
    with pytest.raises(UnknownTimeZone):
        slots_by_day([], "../etc")


def test_month_grid_at_the_end_of_the_calendar():
    weeks = month_grid(date(9999, 12, 1), [], today=date(2026, 1, 1))
    assert [c.day for w in weeks for c in w if c][-1] == date(9999, 12, 31)
