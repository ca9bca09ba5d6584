"""Limits per day and week (expertbook.scheduling.limits): pure, in the expert's zone."""

from datetime import UTC, date, datetime, timedelta

import pytest

from expertbook.scheduling import (
    Interval,
    full_days,
    limit_reached,
    local_day,
    week_of,
    within_limits,
)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def slot(start: datetime, minutes: int = 30) -> Interval:
    return Interval(start, start + timedelta(minutes=minutes))


@pytest.mark.parametrize(
    ("day", "monday"),
    [
        (date(2026, 3, 23), date(2026, 3, 23)),  # a Monday is its own week's
        (date(2026, 3, 29), date(2026, 3, 23)),  # Sunday ends it
        (date(2026, 3, 30), date(2026, 3, 30)),
        (date(2027, 1, 1), date(2026, 12, 28)),  # across a year's end
    ],
)
def test_week_of_is_monday_to_sunday(day, monday):
    assert week_of(day) == monday


@pytest.mark.parametrize(
    ("instant", "tz", "day"),
    [
        (utc(2026, 6, 1, 22, 30), "UTC", date(2026, 6, 1)),
        (utc(2026, 6, 1, 22, 30), "Europe/Berlin", date(2026, 6, 2)),  # 00:30 CEST
        (utc(2026, 6, 2, 3, 0), "America/New_York", date(2026, 6, 1)),  # 23:00 EDT
    ],
)
def test_a_booking_counts_on_its_local_day(instant, tz, day):
    assert local_day(instant, tz) == day


def test_no_limits_nothing_is_full():
    starts = [utc(2026, 6, 1, 9)] * 50
    assert full_days(starts, "UTC", None, None) == (set(), set())
    assert not limit_reached(starts, utc(2026, 6, 1, 10), "UTC", None, None)


@pytest.mark.parametrize(
    ("booked", "limit", "reached"),
    [(0, 1, False), (1, 1, True), (1, 2, False), (2, 2, True), (3, 2, True)],
)
def test_max_per_day(booked, limit, reached):
    starts = [utc(2026, 6, 1, 9 + i) for i in range(booked)]
    assert limit_reached(starts, utc(2026, 6, 1, 15), "UTC", limit, None) is reached
    # The next day is another day.
    assert not limit_reached(starts, utc(2026, 6, 2, 9), "UTC", limit, None)


def test_the_day_is_the_experts_not_utcs():
    # 23:30 UTC on June 1 is already June 2 in Berlin: it fills June 2 there, not June 1.
    starts = [utc(2026, 6, 1, 23, 30)]
    assert limit_reached(starts, utc(2026, 6, 2, 8), "Europe/Berlin", 1, None)
    assert not limit_reached(starts, utc(2026, 6, 1, 8), "Europe/Berlin", 1, None)
    assert limit_reached(starts, utc(2026, 6, 1, 8), "UTC", 1, None)


def test_back_to_back_bookings_each_count():
    starts = [utc(2026, 6, 1, 9), utc(2026, 6, 1, 9, 30)]
    assert limit_reached(starts, utc(2026, 6, 1, 10), "UTC", 2, None)
    assert not limit_reached(starts, utc(2026, 6, 1, 10), "UTC", 3, None)


def test_max_per_week_counts_monday_to_sunday():
    # Monday June 1 .. Sunday June 7, 2026.
    starts = [utc(2026, 6, 1, 9), utc(2026, 6, 7, 9)]
    assert limit_reached(starts, utc(2026, 6, 3, 9), "UTC", None, 2)
    assert not limit_reached(starts, utc(2026, 6, 8, 9), "UTC", None, 2)  # next Monday
    assert not limit_reached(starts, utc(2026, 5, 31, 9), "UTC", None, 2)  # the Sunday before
    assert not limit_reached(starts, utc(2026, 6, 3, 9), "UTC", None, 3)


def test_a_week_across_a_dst_change_is_seven_local_days():
    # Europe/London springs forward on Sunday 2026-03-29: the week of Monday March 23 is
    # 167 hours long; its Sunday 23:30 local is 22:30Z, its Monday 00:30 local is 00:30Z.
    tz = "Europe/London"
    sunday_late = utc(2026, 3, 29, 22, 30)  # 23:30 BST, Sunday: week of March 23
    monday_early = utc(2026, 3, 23, 0, 30)  # 00:30 GMT, Monday: week of March 23
    starts = [sunday_late, monday_early]
    days, weeks = full_days(starts, tz, None, 2)
    assert weeks == {date(2026, 3, 23)}
    assert limit_reached(starts, utc(2026, 3, 25, 12), tz, None, 2)
    # 23:30Z on Sunday is already Monday March 30 in London: the next week.
    assert not limit_reached(starts, utc(2026, 3, 29, 23, 30), tz, None, 2)
    # And in autumn (Sunday 2026-10-25 falls back): 23:30 GMT Sunday is still that week.
    autumn = [utc(2026, 10, 19, 0, 30), utc(2026, 10, 25, 23, 30)]
    assert full_days(autumn, tz, None, 2)[1] == {date(2026, 10, 19)}


def test_the_day_limit_and_the_week_limit_together():
    starts = [utc(2026, 6, 1, 9), utc(2026, 6, 2, 9), utc(2026, 6, 2, 10)]
    days, weeks = full_days(starts, "UTC", 2, 4)
    assert days == {date(2026, 6, 2)} and weeks == set()
    days, weeks = full_days(starts, "UTC", 2, 3)
    assert weeks == {date(2026, 6, 1)}


def test_within_limits_drops_full_days_and_weeks():
    tz = "America/New_York"
    # Booked: Tuesday June 2, 10:00 EDT.
    starts = [utc(2026, 6, 2, 14)]
    slots = [
        slot(utc(2026, 6, 2, 3)),  # Monday June 1, 23:00 EDT: another day
        slot(utc(2026, 6, 2, 15)),  # Tuesday 11:00 EDT: the full day
        slot(utc(2026, 6, 3, 3, 30)),  # Tuesday 23:30 EDT: still the full day
        slot(utc(2026, 6, 3, 14)),  # Wednesday
    ]
    assert within_limits(slots, starts, tz, 1, None) == [slots[0], slots[3]]
    # A full week (Monday June 1 .. Sunday June 7) offers nothing, the next one does.
    following = slot(utc(2026, 6, 8, 14))
    assert within_limits([*slots, following], starts, tz, None, 1) == [following]
    assert within_limits(slots, starts, tz, None, None) is slots
    assert within_limits(slots, [], tz, 1, 1) is slots
