"""Pure helpers for the booking page's month calendar: parsing the query, the month grid,
and grouping UTC slots by the viewer's local day. No Flask, no database."""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

from ..scheduling import Interval, zone

_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class CalendarDay:
    """One day cell of the month grid."""

    day: date
    has_slots: bool
    is_today: bool
    is_past: bool
    selected: bool


def parse_day(value: str | None) -> date | None:
    """`YYYY-MM-DD` as a date, or None for anything else (never raises)."""
    if not value or _DAY_RE.fullmatch(value) is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_month(value: str | None) -> date | None:
    """`YYYY-MM` as the first day of that month, or None for anything else (never raises)."""
    match = _MONTH_RE.fullmatch(value or "")
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= year <= 9999 or not 1 <= month <= 12:
        return None
    return date(year, month, 1)


def month_key(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def last_day_of(month: date) -> date:
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def shift_month(month: date, months: int) -> date | None:
    """The first day of the month `months` away, or None beyond the calendar's range."""
    index = month.year * 12 + month.month - 1 + months
    year, month_index = divmod(index, 12)
    if not 1 <= year <= 9999:
        return None
    return date(year, month_index + 1, 1)


def slots_by_day(slots: Iterable[Interval], tz: str) -> dict[date, list[Interval]]:
    """Group UTC slots by their start's local date in zone `tz`, keeping their order.

    Slots sorted by start (as the slot engine gives them) are grouped a day at a time: the
    local date of a day's first and last slot, and their offsets from UTC, stand for those
    in between (no zone changes its offset twice in a day), which spares a zone conversion
    per slot (a round-the-clock month has thousands). Anything else, slot by slot.

    Raises:
        UnknownTimeZone: `tz` is not an IANA zone.
    """
    zi = zone(tz)
    slots = list(slots)
    starts = [slot.start for slot in slots]
    grouped: dict[date, list[Interval]] = {}
    if any(later < earlier for earlier, later in pairwise(starts)):
        for slot in slots:
            grouped.setdefault(slot.start.astimezone(zi).date(), []).append(slot)
        return grouped
    first = 0
    while first < len(slots):
        local = starts[first].astimezone(zi)
        day = local.date()
        # The first instant of the next local day (fold=0: the earlier one, or the end of a
        # gap), as the zone's rules place it.
        following = datetime.combine(day + _DAY, time(), zi).astimezone(UTC)
        end = bisect_left(starts, following, first + 1)
        last = starts[end - 1].astimezone(zi)
        if last.date() != day or last.utcoffset() != local.utcoffset():
            end = first + 1  # the offset changes within: this slot alone, then the next
        grouped.setdefault(day, []).extend(slots[first:end])
        first = end
    return grouped


def month_grid(
    month: date, slot_days: Iterable[date], today: date, selected: date | None = None
) -> list[list[CalendarDay | None]]:
    """The weeks (Monday first) of `month`; None pads the cells outside the month.

    Args:
        month: any day of the month to show.
        slot_days: the local dates that have at least one free slot.
        today: the viewer's local date; earlier days are past and never bookable.
        selected: the day whose slots are shown, if any.
    """
    offered = set(slot_days)
    first = month.replace(day=1)
    last = last_day_of(first)
    cells: list[CalendarDay | None] = [None] * first.weekday()
    for number in range(1, last.day + 1):
        day = first.replace(day=number)
        cells.append(
            CalendarDay(
                day=day,
                has_slots=day in offered and day >= today,
                is_today=day == today,
                is_past=day < today,
                selected=day == selected,
            )
        )
    cells.extend([None] * (-len(cells) % 7))
    return [cells[i : i + 7] for i in range(0, len(cells), 7)]


def local_today(now: datetime, tz: str) -> date:
    """The viewer's current local date.

    Raises:
        UnknownTimeZone: `tz` is not an IANA zone.
    """
    return now.astimezone(zone(tz)).date()
