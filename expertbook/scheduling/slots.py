"""Pure slot computation: which start times an expert offers for an event type.

Everything here is standard library only and works on aware datetimes; internally all instants
are UTC (``datetime.UTC``) and every returned datetime is in UTC.

A slot ``[start, start + duration)`` is offered when:

1. it lies inside one of the expert's working intervals for a local date (the weekly hours for
   that weekday, or the date's override instead when there is one), in the expert's zone;
2. it starts on the grid counted from the start of that working interval, stepping by
   ``interval_minutes`` (default: the duration); the slot must end by the interval's end;
3. ``now + min_notice <= start < now + max_days_ahead days``;
4. ``[start - buffer_before, end + buffer_after)`` overlaps no busy interval (busy intervals are
   already widened by their own event type's buffers, see :func:`busy_interval`); touching
   (back-to-back) is not overlapping;
5. for :func:`offered_slots`, ``start`` lies in the viewer's day window (:func:`day_window`).

DST policy (deliberate, and tested):

* Working hours are wall-clock times: "09:00" stays 09:00 local on both sides of a change, so
  its UTC instant moves (09:00 Europe/London is 09:00Z in winter, 08:00Z in summer).
* Wall-clock times are converted with ``fold=0``. A nonexistent local time (spring-forward
  gap) gets the offset in force before the change, i.e. it is shifted forward by the gap
  (01:30 London on 2026-03-29 -> 01:30Z = 02:30 BST). A repeated local time (autumn) is its
  FIRST occurrence (01:30 London on 2026-10-25 -> 00:30Z, still BST).
* A working interval that spans a change is the span of real elapsed time between its converted
  ends (London 01:00-03:00 on 2026-03-29 lasts one hour; 01:00-02:00 on 2026-10-25 lasts two),
  and the slot grid steps in real elapsed minutes.
* "24:00" (minute 1440) is the next local day's 00:00.
* An interval whose converted end is not after its converted start (only possible inside a
  gap, e.g. 01:30-02:00 London on 2026-03-29) yields nothing.
* Converted intervals of one day can then overlap (00:00-01:30 and 02:00-04:00 on London's
  spring-forward day become 00:00Z-01:30Z and 01:00Z-03:00Z); each keeps its own grid and
  duplicate slot starts are reported once.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from expertbook.scheduling.zones import UTC, as_utc, local_to_utc, zone

__all__ = [
    "MINUTES_PER_DAY",
    "Availability",
    "Interval",
    "SlotRules",
    "busy_interval",
    "day_window",
    "format_hhmm",
    "is_offered",
    "offered_slots",
    "parse_hhmm",
    "validate_day_intervals",
    "working_intervals",
]

MINUTES_PER_DAY = 1440  # also the "24:00" end of a day
_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_MICROSECOND = timedelta(microseconds=1)
# Local days whose intervals an Availability keeps: a booking check's three days many times
# over, while the process keeps thousands of experts' hours (cached_hours).
_UTC_DAYS_KEPT = 16
_HHMM_RE = re.compile(r"([0-9]{2}):([0-9]{2})")


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open span ``[start, end)`` of aware UTC datetimes."""

    # No __post_init__ validation on purpose: Intervals are created per candidate slot on the
    # hot path. Inputs are normalised at the public boundaries instead.
    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        """Return True when the two half-open intervals share any instant."""
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Availability:
    """An expert's working hours: weekly local hours plus per-date overrides.

    ``weekly`` maps weekday (0=Mon..6=Sun) to ``(start_minute, end_minute)`` pairs, minutes
    since local midnight (end may be 1440 = "24:00"). An ``overrides`` entry REPLACES the weekly
    hours for that date; an empty sequence is a day off.

    Raises:
        UnknownTimeZone: if ``timezone`` is not a known IANA name.
        ValueError: if a weekday key or an interval list is invalid.
    """

    timezone: str
    weekly: Mapping[int, Sequence[tuple[int, int]]]
    overrides: Mapping[date, Sequence[tuple[int, int]]] = field(default_factory=dict)
    # Some local days' working intervals in UTC, as working_intervals found them: the hours
    # of an expert's version are kept for many requests (schedule_cache.cached_hours), and
    # a booking check asks for three days, often the same.
    _utc_days: dict[date, list[Interval]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        zone(self.timezone)
        for weekday, intervals in self.weekly.items():
            if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
                raise ValueError(f"weekday must be 0 (Mon) .. 6 (Sun), got {weekday!r}")
            validate_day_intervals(intervals)
        for day, intervals in self.overrides.items():
            # datetime is a date subclass but would never match a date key in lookups.
            if not isinstance(day, date) or isinstance(day, datetime):
                raise ValueError(f"override keys must be dates, got {day!r}")
            validate_day_intervals(intervals)

    def hours_for(self, day: date) -> Sequence[tuple[int, int]]:
        """Return the local (start_minute, end_minute) intervals that apply on `day`."""
        if day in self.overrides:
            return self.overrides[day]
        return self.weekly.get(day.weekday(), ())


@dataclass(frozen=True)
class SlotRules:
    """An event type's slot parameters (all in minutes, except ``max_days_ahead`` in days).

    Raises:
        ValueError: if duration/interval are not positive or any other value is negative.
    """

    duration_minutes: int
    interval_minutes: int | None = None
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    min_notice_minutes: int = 0
    max_days_ahead: int = 60

    def __post_init__(self) -> None:
        if self.duration_minutes <= 0:
            raise ValueError("duration_minutes must be positive")
        if self.interval_minutes is not None and self.interval_minutes <= 0:
            raise ValueError("interval_minutes must be positive (or None for the duration)")
        for name in (
            "buffer_before_minutes",
            "buffer_after_minutes",
            "min_notice_minutes",
            "max_days_ahead",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def step_minutes(self) -> int:
        """The slot grid step: ``interval_minutes`` or, when unset, the duration."""
        return self.interval_minutes or self.duration_minutes


# --------------------------------------------------------------------------- HH:MM helpers


def parse_hhmm(text: str, *, allow_24: bool = False) -> int:
    """Parse a strict "HH:MM" string into minutes since midnight.

    Args:
        text: exactly two digits, a colon, two digits ("09:30").
        allow_24: accept "24:00" (returns 1440), used for interval ends.

    Returns:
        Minutes since midnight, 0..1439 (or 1440).

    Raises:
        ValueError: for anything else ("9:30", "25:00", "12:60", "", "24:00" without allow_24).
    """
    match = _HHMM_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"time must look like HH:MM, got {text!r}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours == 24 and minutes == 0 and allow_24:
        return MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        raise ValueError(f"not a valid time of day: {text!r}")
    return hours * 60 + minutes


def format_hhmm(minutes: int) -> str:
    """Format minutes since midnight (0..1440) as "HH:MM"; 1440 becomes "24:00".

    Raises:
        ValueError: if `minutes` is outside 0..1440.
    """
    if not 0 <= minutes <= MINUTES_PER_DAY:
        raise ValueError(f"minutes must be within 0..1440, got {minutes}")
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def validate_day_intervals(intervals: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Check one day's (start_minute, end_minute) intervals and return them sorted.

    Back-to-back intervals (09:00-12:00 and 12:00-13:00) are allowed.

    Raises:
        ValueError: with a human-readable message if an interval is malformed, has
            start >= end, lies outside 00:00..24:00, or two intervals overlap.
    """
    checked: list[tuple[int, int]] = []
    for item in intervals:
        try:
            start, end = item
        except (TypeError, ValueError):
            raise ValueError(f"an interval must be a (start, end) pair, got {item!r}") from None
        for value in (start, end):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"interval bounds must be whole minutes, got {value!r}")
        if not (0 <= start <= MINUTES_PER_DAY and 0 <= end <= MINUTES_PER_DAY):
            raise ValueError("times must lie between 00:00 and 24:00")
        if start >= end:
            raise ValueError(
                f"interval {format_hhmm(start)}-{format_hhmm(end)} must end after it starts"
            )
        checked.append((start, end))
    checked.sort()
    for (prev_start, prev_end), (start, end) in zip(checked, checked[1:], strict=False):
        if start < prev_end:
            raise ValueError(
                f"intervals {format_hhmm(prev_start)}-{format_hhmm(prev_end)} and "
                f"{format_hhmm(start)}-{format_hhmm(end)} overlap"
            )
    return checked


# --------------------------------------------------------------------------- intervals


def working_intervals(
    availability: Availability, first_day: date, last_day: date
) -> list[Interval]:
    """Return the expert's working intervals for local dates first_day..last_day (inclusive).

    Returns:
        UTC intervals sorted by (start, end); empty when last_day < first_day. Intervals that
        collapse inside a DST gap are dropped (see the module docstring).
    """
    tz = zone(availability.timezone)
    known = availability._utc_days
    result: list[Interval] = []
    day = first_day
    while day <= last_day:
        intervals = known.get(day)
        if intervals is None:
            intervals = []
            for start_minute, end_minute in availability.hours_for(day):
                start = local_to_utc(day, start_minute, tz)
                end = local_to_utc(day, end_minute, tz)
                if end > start:
                    intervals.append(Interval(start, end))
            # Kept once whole: another thread never finds a day half worked out.
            if len(known) >= _UTC_DAYS_KEPT:
                known.clear()
            known[day] = intervals
        result += intervals
        day += _ONE_DAY
    # Dates come in order, but gap-shifted boundaries can reorder a day's intervals.
    result.sort(key=lambda iv: (iv.start, iv.end))
    return result


def day_window(day_from: date, day_to: date, tz: str) -> Interval:
    """Return ``[day_from 00:00, (day_to + 1) 00:00)`` in zone `tz`, as UTC.

    Raises:
        UnknownTimeZone: if `tz` is unknown.
        ValueError: if day_to is before day_from or the dates are out of datetime's range.
    """
    zi = zone(tz)
    if day_to < day_from:
        raise ValueError(f"day_to {day_to} is before day_from {day_from}")
    try:
        return Interval(local_to_utc(day_from, 0, zi), local_to_utc(day_to, MINUTES_PER_DAY, zi))
    except OverflowError:
        raise ValueError("date range is out of bounds") from None


def busy_interval(
    start: datetime, end: datetime, buffer_before_minutes: int, buffer_after_minutes: int
) -> Interval:
    """Return a booking's blocked time: ``[start - before, end + after)`` in UTC.

    Args:
        start: the booking's start (aware, any zone).
        end: the booking's end (aware, any zone).
        buffer_before_minutes: the booking's own event type's buffer before.
        buffer_after_minutes: the booking's own event type's buffer after.

    Raises:
        ValueError: if a datetime is naive, end <= start, or a buffer is negative.
    """
    start_utc, end_utc = as_utc(start, "start"), as_utc(end, "end")
    if end_utc <= start_utc:
        raise ValueError("a booking must end after it starts")
    if buffer_before_minutes < 0 or buffer_after_minutes < 0:
        raise ValueError("buffers must not be negative")
    return Interval(
        start_utc - timedelta(minutes=buffer_before_minutes),
        end_utc + timedelta(minutes=buffer_after_minutes),
    )


def _merge_busy(
    busy: Iterable[Interval], lower: datetime, upper: datetime
) -> tuple[list[datetime], list[datetime]]:
    """Sort and merge the busy intervals touching [lower, upper) into parallel start/end lists."""
    spans: list[tuple[datetime, datetime]] = []
    for interval in busy:
        start, end = interval.start, interval.end
        # The identity check keeps the common all-UTC case free of conversions.
        if start.tzinfo is not UTC:
            start = as_utc(start, "busy interval start")
        if end.tzinfo is not UTC:
            end = as_utc(end, "busy interval end")
        # Bookings that cannot touch any candidate are dropped before the sort.
        if start < end and end > lower and start < upper:
            spans.append((start, end))
    spans.sort()
    starts: list[datetime] = []
    ends: list[datetime] = []
    for start, end in spans:
        # Merging touching spans too is safe for half-open overlap tests and keeps lists short.
        if ends and start <= ends[-1]:
            if end > ends[-1]:
                ends[-1] = end
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


# --------------------------------------------------------------------------- slots


def offered_slots(
    availability: Availability,
    rules: SlotRules,
    busy: Iterable[Interval],
    *,
    now: datetime,
    day_from: date,
    day_to: date,
    viewer_tz: str,
    first_of_each_day: bool = False,
) -> list[Interval]:
    """Return the offered slots whose start lies in the viewer's days day_from..day_to.

    Args:
        availability: the expert's working hours.
        rules: the event type's slot rules.
        busy: the expert's busy intervals (bookings widened via busy_interval), any order.
        now: the current instant (aware).
        day_from: first viewer-local day, included.
        day_to: last viewer-local day, included.
        viewer_tz: IANA zone in which day_from/day_to are read.
        first_of_each_day: only the first slot of each viewer-local day (what a month
            calendar marks), found without making the rest: the candidates after it that
            day are skipped, unless the zone changes its offset within the rest of the day.

    Returns:
        UTC slots ``[start, start + duration)`` sorted by start, without duplicates.

    Raises:
        UnknownTimeZone: if viewer_tz or the expert's zone is unknown.
        ValueError: if `now` or a busy datetime is naive, or day_to < day_from.
    """
    window = day_window(day_from, day_to, viewer_tz)
    now_utc = as_utc(now, "now")
    # Intersect the viewer's window with the booking horizon first: this also bounds the work
    # for absurd date ranges to max_days_ahead days.
    lower = max(window.start, now_utc + timedelta(minutes=rules.min_notice_minutes))
    upper = min(window.end, now_utc + timedelta(days=rules.max_days_ahead))
    if lower >= upper:
        return []

    tz = zone(availability.timezone)
    # The viewer's days are not the expert's days; one day of margin either side covers any
    # offset difference, "24:00" ends and gap-shifted boundaries.
    first_day = lower.astimezone(tz).date() - _ONE_DAY
    last_day = upper.astimezone(tz).date() + _ONE_DAY
    intervals = working_intervals(availability, first_day, last_day)
    if not intervals:
        return []

    duration = timedelta(minutes=rules.duration_minutes)
    step = timedelta(minutes=rules.step_minutes)
    before = timedelta(minutes=rules.buffer_before_minutes)
    after_end = duration + timedelta(minutes=rules.buffer_after_minutes)
    busy_starts, busy_ends = _merge_busy(busy, lower - before, upper + after_end)
    busy_count = len(busy_starts)

    slots: list[Interval] = []
    append = slots.append
    last_start: datetime | None = None
    needs_cleanup = False
    viewer_zone = zone(viewer_tz)
    firsts: dict[date, datetime] = {}  # first_of_each_day: the viewer's day -> its first start
    for interval in intervals:
        origin = interval.start
        latest = interval.end - duration  # the last start whose slot still fits
        if latest < origin or latest < lower or interval.start >= upper:
            continue
        start = origin if origin >= lower else origin + step * -((origin - lower) // step)
        while start <= latest and start < upper:
            if first_of_each_day:
                local = start.astimezone(viewer_zone)
                found = firsts.get(local.date())
                if found is not None and start >= found:
                    # Nothing later that day can come first: on to the next day's grid point.
                    start = _next_day_start(start, local, viewer_zone, step)
                    continue
            # First merged busy span ending after the widened slot's start; only it can
            # overlap, because merged spans are disjoint and sorted.
            index = bisect_right(busy_ends, start - before)
            if index < busy_count and busy_starts[index] < start + after_end:
                # Jump straight to the first grid point clear of this busy span.
                clear = busy_ends[index] + before
                start += step * -((start - clear) // step)
                continue
            if last_start is not None and start <= last_start:
                needs_cleanup = True  # overlapping working intervals (DST gap), see docstring
            append(Interval(start, start + duration))
            if first_of_each_day:
                firsts[local.date()] = start
            last_start = start
            start += step
    if needs_cleanup:
        slots = sorted({slot.start: slot for slot in slots}.values(), key=lambda s: s.start)
    if first_of_each_day:
        slots = [
            slot
            for slot in slots
            if firsts[slot.start.astimezone(viewer_zone).date()] == slot.start
        ]
    return slots


def _next_day_start(start: datetime, local: datetime, tz, step: timedelta) -> datetime:
    """The first point of `start`'s grid in the next local day of zone `tz` (`local`: start
    there), or simply the next one when the zone's offset changes before then."""
    following = datetime.combine(local.date() + _ONE_DAY, time(), tz).astimezone(UTC)
    before = (following - _MICROSECOND).astimezone(tz)
    if before.utcoffset() != local.utcoffset() or before.date() != local.date():
        return start + step
    return start + step * -((start - following) // step)


def is_offered(
    availability: Availability,
    rules: SlotRules,
    busy: Iterable[Interval],
    *,
    now: datetime,
    start: datetime,
) -> bool:
    """Return True when `start` is exactly one of the offered slot starts.

    Only the expert's local days around `start` are computed and `busy` is scanned once
    without sorting, so this is cheap enough to call when a booking is submitted.

    Args:
        availability: the expert's working hours.
        rules: the event type's slot rules.
        busy: the expert's busy intervals (bookings widened via busy_interval).
        now: the current instant (aware).
        start: the requested slot start (aware, any zone).

    Raises:
        ValueError: if `now`, `start` or a busy datetime is naive.
    """
    start_utc = as_utc(start, "start")
    now_utc = as_utc(now, "now")
    if start_utc < now_utc + timedelta(minutes=rules.min_notice_minutes):
        return False
    if start_utc >= now_utc + timedelta(days=rules.max_days_ahead):
        return False

    duration = timedelta(minutes=rules.duration_minutes)
    step = timedelta(minutes=rules.step_minutes)
    end_utc = start_utc + duration
    tz = zone(availability.timezone)
    local_day = start_utc.astimezone(tz).date()
    # Same one-day margin as offered_slots, so both agree on which intervals exist.
    intervals = working_intervals(availability, local_day - _ONE_DAY, local_day + _ONE_DAY)
    if not any(
        iv.start <= start_utc and end_utc <= iv.end and (start_utc - iv.start) % step == _ZERO
        for iv in intervals
    ):
        return False

    widened_start = start_utc - timedelta(minutes=rules.buffer_before_minutes)
    widened_end = end_utc + timedelta(minutes=rules.buffer_after_minutes)
    for interval in busy:
        busy_start = as_utc(interval.start, "busy interval start")
        busy_end = as_utc(interval.end, "busy interval end")
        if busy_start < widened_end and widened_start < busy_end:
            return False
    return True
