"""Pure booking limits: at most N bookings of an event type a day and M a week.

Days and weeks are the expert's: a booking counts on the local date its start falls on in the
expert's zone, and a week runs Monday to Sunday of those dates. A day is full when its own
count reached the daily limit, or when its week's count reached the weekly one; a full day
offers nothing more. Standard library only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from expertbook.scheduling.slots import Interval
from expertbook.scheduling.zones import zone

__all__ = ["COUNT_MARGIN", "full_days", "limit_reached", "local_day", "week_of", "within_limits"]

# The bookings that can share a local day or week with an instant start within this much of
# it (a week, plus a day for the widest offsets): what to read to count them.
COUNT_MARGIN = timedelta(days=8)


def local_day(instant: datetime, tz: str) -> date:
    """The date `instant` (aware) falls on in zone `tz`."""
    return instant.astimezone(zone(tz)).date()


def week_of(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def full_days(
    starts: Iterable[datetime], tz: str, max_per_day: int | None, max_per_week: int | None
) -> tuple[set[date], set[date]]:
    """The expert-local days and weeks that are full.

    Args:
        starts: the starts (aware) of the event type's bookings that count (confirmed or
            pending), at least those of the days and weeks asked about.
        tz: the expert's zone.
        max_per_day: the daily limit, or None for none.
        max_per_week: the weekly limit (Monday to Sunday), or None for none.

    Returns:
        (full days, Mondays of full weeks).

    Raises:
        UnknownTimeZone: `tz` is not a known zone.
    """
    if max_per_day is None and max_per_week is None:
        return set(), set()
    tzinfo = zone(tz)
    per_day = Counter(start.astimezone(tzinfo).date() for start in starts)
    days: set[date] = set()
    weeks: set[date] = set()
    if max_per_day is not None:
        days = {day for day, count in per_day.items() if count >= max_per_day}
    if max_per_week is not None:
        per_week: Counter[date] = Counter()
        for day, count in per_day.items():
            per_week[week_of(day)] += count
        weeks = {monday for monday, count in per_week.items() if count >= max_per_week}
    return days, weeks


def limit_reached(
    starts: Iterable[datetime],
    start: datetime,
    tz: str,
    max_per_day: int | None,
    max_per_week: int | None,
) -> bool:
    """True when one more booking starting at `start` would exceed a limit (arguments as for
    full_days; `starts` must not include the booking being moved)."""
    if max_per_day is None and max_per_week is None:
        return False
    days, weeks = full_days(starts, tz, max_per_day, max_per_week)
    day = local_day(start, tz)
    return day in days or week_of(day) in weeks


def within_limits(
    slots: list[Interval],
    starts: Iterable[datetime],
    tz: str,
    max_per_day: int | None,
    max_per_week: int | None,
) -> list[Interval]:
    """`slots` without those on full days or in full weeks (arguments as for full_days)."""
    if max_per_day is None and max_per_week is None:
        return slots
    days, weeks = full_days(starts, tz, max_per_day, max_per_week)
    if not days and not weeks:
        return slots
    tzinfo = zone(tz)
    kept = []
    for slot in slots:
        day = slot.start.astimezone(tzinfo).date()
        if day not in days and week_of(day) not in weeks:
            kept.append(slot)
    return kept
