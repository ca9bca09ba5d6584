"""Busy times from iCalendar data: an ICS feed, or the event objects of a CalDAV calendar.

Pure: bytes in, UTC intervals out; no Flask, no database, no network. `icalendar` parses,
`x_wr_timezone` applies Google's X-WR-TIMEZONE, `recurring_ical_events` expands RRULE, RDATE,
EXDATE and moved occurrences. Anything that cannot be used becomes a `FeedError` whose message
an expert can read, never another exception.
"""

from __future__ import annotations

import time as clock
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import ClassVar

import x_wr_timezone
from icalendar import Calendar, Component
from icalendar.error import GloballyUniqueTZIDGuessed
from icalendar.prop import vRecur
from recurring_ical_events import CalendarQuery, ComponentsWithName, EventAdapter, Occurrence

from ..scheduling import Interval
from ..scheduling.zones import as_utc, is_valid_timezone, zone
from .icstext import (
    FILE_PROPERTY,
    MAX_FEED_BYTES,
    MAX_FEED_EVENTS,
    FeedError,
    OneOff,
    combined_text,
    first_line,
    too_many_events,
)

__all__ = [
    "MAX_FEED_BYTES",
    "MAX_FEED_EVENTS",
    "FeedError",
    "ObjectBusy",
    "Tally",
    "busy_by_object",
    "busy_times",
]

# Occurrences inside the (padded) window; a FREQ=MINUTELY rule reaches this in ~70 days.
MAX_OCCURRENCES = 100_000
# dateutil walks every rule from its DTSTART, and caches what it walks, however far before
# the window that is: FREQ=MINUTELY from a year ago is half a million steps (seconds, and
# hundreds of MB) before the window is reached. So rules are priced before expansion.
MAX_RULE_STEPS = 1_000_000
# A rule that can never match (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30) makes dateutil search up
# to the year 9999, seconds per series, which no price foresees; this stops the feed instead.
MAX_EXPAND_SECONDS = 10.0


@dataclass
class Tally:
    """How much of the limits above (and icstext's) a read used. A calendar read in parts
    at once (parse_worker) adds up its parts' tallies and checks the sum: the same limits
    hold as for one read."""

    bytes: int = 0
    events: int = 0
    steps: int = 0  # dateutil's, as _rule_steps prices them
    occurrences: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def check(self) -> None:
        """Raise FeedError for the first limit past."""
        if self.bytes > MAX_FEED_BYTES:
            raise FeedError(f"The calendar is larger than {MAX_FEED_BYTES // (1024 * 1024)} MB.")
        if self.events > MAX_FEED_EVENTS:
            raise too_many_events()
        if self.steps > MAX_RULE_STEPS:
            raise FeedError("The calendar repeats events too often to be read.")
        if self.occurrences > MAX_OCCURRENCES:
            raise FeedError(
                f"The calendar has more than {MAX_OCCURRENCES:,} events in the weeks it is "
                "read for."
            )


# Floating and all-day times are read in the calendar's zone, up to 14 hours from UTC, while
# the library compares them with the window as if they were UTC; so it is asked for a day
# more on each side, and the exact clip happens after the conversion.
_PAD = timedelta(days=1)
_RULE_PERIOD = {
    "SECONDLY": timedelta(seconds=1),
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
    "MONTHLY": timedelta(days=28),
    "YEARLY": timedelta(days=365),
}


class _Query(CalendarQuery):
    """Skips a series on any error its data can cause, not only on those the library
    expects (an event in the year 9999 overflows; SEQUENCE:abc cannot be compared)."""

    suppressed_errors: ClassVar[list[type[Exception]]] = [
        *CalendarQuery.suppressed_errors,
        ValueError,
        TypeError,
        OverflowError,
    ]


class _EventAdapter(EventAdapter):
    """A VEVENT that also says whether it blocks time (TRANSP and STATUS) and which file it
    came from."""

    @property
    def blocks_time(self) -> bool:
        event = self._component
        return (
            str(event.get("TRANSP", "")).upper() != "TRANSPARENT"
            and str(event.get("STATUS", "")).upper() != "CANCELLED"
        )

    @property
    def file(self) -> int:
        return int(str(self._component.get(FILE_PROPERTY, -1)))


class _Occurrence(Occurrence):
    """An occurrence that remembers whether its component blocks time (a moved or
    cancelled occurrence has a component of its own), and its UID and file."""

    def __init__(self, adapter: _EventAdapter, start=None, end=None, sequence: int = -1):
        super().__init__(adapter, start, end, sequence)
        self.blocks_time = adapter.blocks_time
        self.event_uid = str(adapter.uid or "")
        self.file = adapter.file


@dataclass(frozen=True)
class ObjectBusy:
    """The busy times of one event object (a CalDAV calendar's file, or the events of a feed
    with one UID: a series and its moved occurrences) in a window."""

    uid: str
    busy: list[Interval]  # merged, clipped to the window


def busy_times(
    data: bytes | list[bytes],
    *,
    start: datetime,
    end: datetime,
    default_tz: str,
    is_own_uid: Callable[[str], bool] = lambda uid: False,
) -> list[Interval]:
    """Return the busy times an iCalendar feed or a CalDAV calendar holds in a window.

    Args:
        data: one iCalendar file, or several (a CalDAV calendar gives one per event).
        start: the window's start (aware).
        end: the window's end (aware).
        default_tz: the IANA zone for all-day and floating times when the calendar names
            none with X-WR-TIMEZONE (the expert's zone).
        is_own_uid: says which UIDs ExpertBook wrote itself; those events are skipped, as
            the bookings behind them block time already.

    Returns:
        Sorted, merged intervals in UTC, clipped to ``[start, end)``. Transparent (free),
        cancelled and zero-length events block nothing; a series the library cannot read
        is skipped, not the whole calendar.

    Raises:
        FeedError: the data is not iCalendar, is damaged, or is beyond a limit.
        UnknownTimeZone: `default_tz` is not an IANA zone.
        ValueError: `start` or `end` is naive.
    """
    objects = busy_by_object(data, start=start, end=end, default_tz=default_tz, by="uid")
    return merged(
        (interval.start, interval.end)
        for uid, found in objects.items()
        if not is_own_uid(uid)
        for interval in found.busy
    )


def busy_by_object(
    data: bytes | list[bytes],
    *,
    start: datetime,
    end: datetime,
    default_tz: str,
    by: str,
    tally: Tally | None = None,
) -> dict[int | str, ObjectBusy]:
    """busy_times, told apart by object: with `by="file"` keyed by the index of the file in
    `data` (a CalDAV calendar's objects), with `by="uid"` by UID (a feed's events). Objects
    with no busy time in the window are left out. Raises as busy_times does. What the read
    used of the limits is added to `tally`, if given."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    tally = Tally() if tally is None else tally
    files = [data] if isinstance(data, bytes | bytearray) else data
    tally.bytes += sum(len(file) for file in files)
    tally.check()
    calendar, one_offs = _parsed(files, start, end, tally) if files else (Calendar(), [])
    x_wr_name = str(calendar.get("X-WR-TIMEZONE", ""))
    calendar_tz = zone(x_wr_name if is_valid_timezone(x_wr_name) else default_tz)

    # Events without a start are left out before the (costly) rules.
    calendar.subcomponents = [
        event for event in calendar.subcomponents if event.name == "VEVENT" and "DTSTART" in event
    ]
    calendar.subcomponents = _priced(calendar.subcomponents, end, tally)
    query = _Query(
        calendar,
        components=[ComponentsWithName("VEVENT", _EventAdapter, occurrence=_Occurrence)],
        skip_bad_series=True,
    )
    spans: dict[int | str, list[tuple[datetime, datetime]]] = {}
    uids: dict[int | str, str] = {}

    def add(file: int, uid: str, span_start: datetime, span_end: datetime) -> None:
        if span_start < end and start < span_end:
            key = file if by == "file" else uid
            spans.setdefault(key, []).append((max(span_start, start), min(span_end, end)))
            uids.setdefault(key, uid)

    for occurrence in _occurrences(query, start - _PAD, end + _PAD, tally):
        if occurrence.blocks_time:
            add(
                occurrence.file,
                occurrence.event_uid,
                _instant(occurrence.start, calendar_tz),
                _instant(occurrence.end, calendar_tz),
            )
    for event in one_offs:
        if event.blocks:
            try:
                add(event.file, event.uid, *_one_off_span(event, calendar_tz))
            except ValueError:  # a date that does not exist: skipped, as a broken series is
                continue
    found = {
        key: ObjectBusy(uids[key], merged(object_spans)) for key, object_spans in spans.items()
    }
    return {key: value for key, value in found.items() if value.busy}


def _one_off_span(event: OneOff, calendar_tz: tzinfo) -> tuple[datetime, datetime]:
    """A plain one-off's start and end in UTC, read as _instant reads an occurrence's."""

    def instant(value: str) -> datetime:
        # The shape is checked (icstext.one_off); a day or hour out of range is ValueError.
        day = date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        if len(value) == 8:
            return _instant(day, calendar_tz)
        moment = datetime(day.year, day.month, day.day,
                          int(value[9:11]), int(value[11:13]), int(value[13:15]))  # fmt: skip
        if value.endswith("Z"):
            return moment.replace(tzinfo=UTC)
        return _instant(moment.replace(tzinfo=zone(event.tzid)) if event.tzid else moment,
                        calendar_tz)  # fmt: skip

    # recurring-ical-events reads an end before the start as the other way round.
    return tuple(sorted((instant(event.start), instant(event.end))))


def _parsed(
    files: list[bytes], start: datetime, end: datetime, tally: Tally
) -> tuple[Calendar, list[OneOff]]:
    """Parse the files as one calendar, X-WR-TIMEZONE applied, and the plain one-offs
    apart (icstext.one_off)."""
    text, one_offs, events = combined_text(
        files, (start - 2 * _PAD).strftime("%Y%m%d"), (end + 2 * _PAD).strftime("%Y%m%d")
    )
    tally.events += events
    try:
        # A TZID like "/freeassociation.sourceforge.net/Europe/Berlin" means Europe/Berlin;
        # icalendar reads it so, and warns that it guessed.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GloballyUniqueTZIDGuessed)
            calendar = Calendar.from_ical(text)
    except ValueError as error:  # icalendar's word for a line it cannot split
        raise FeedError(f"The calendar file is damaged: {first_line(error)}") from None
    name = str(calendar.get("X-WR-TIMEZONE", ""))
    if is_valid_timezone(name):
        calendar = x_wr_timezone.to_standard(calendar, timezone=zone(name))
    return calendar, one_offs


def _priced(events: list[Component], end: datetime, tally: Tally) -> list[Component]:
    """The events, less those with a rule dateutil would never finish (INTERVAL=0).

    Raises:
        FeedError: when the rules would take dateutil too many steps to walk.
    """
    kept = []
    for event in events:
        rules = event.get("RRULE", [])
        rule_steps = [
            _rule_steps(rule, event["DTSTART"], end)
            for rule in (rules if isinstance(rules, list) else [rules])
            if isinstance(rule, vRecur)
        ]
        if None in rule_steps:
            continue
        tally.steps += sum(rule_steps)
        tally.check()
        kept.append(event)
    return kept


def _rule_steps(rule: vRecur, dtstart: object, end: datetime) -> int | None:
    """About how many steps dateutil takes for `rule` from DTSTART to `end` (or UNTIL, or
    COUNT), an estimate for the limit, not an expansion; None for a rule that would never
    end."""
    interval = rule.get("INTERVAL", [1])[0]
    if not isinstance(interval, int) or interval < 1:
        return None  # dateutil loops forever on INTERVAL=0
    try:
        first = dtstart.dt
    except (AttributeError, ValueError):  # a value icalendar could not read
        first = None
    period = _RULE_PERIOD.get(str(rule.get("FREQ", [""])[0]).upper())
    if not isinstance(first, date) or period is None:
        return 0  # the library skips this series as broken
    last = end.date()
    until = rule.get("UNTIL", [None])[0]
    if isinstance(until, date):
        last = min(last, until.date() if isinstance(until, datetime) else until)
    first_day = first.date() if isinstance(first, datetime) else first
    steps = ((last - first_day).days + 1) * timedelta(days=1) // (period * interval)
    # BYHOUR, BYMINUTE and BYSECOND multiply the steps inside each period.
    for part in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        steps *= max(len(rule.get(part, [])), 1)
    count = rule.get("COUNT", [None])[0]
    if isinstance(count, int) and count > 0:
        steps = min(steps, count)
    return max(steps, 0)


def _occurrences(
    query: _Query, lower: datetime, upper: datetime, tally: Tally
) -> Iterator[Occurrence]:
    """Yield the occurrences touching [lower, upper), one series at a time and lazily, so the
    limits stop a flood before it is built; a series the library finds broken is left out."""
    deadline = clock.monotonic() + MAX_EXPAND_SECONDS
    for series in query.series:
        if clock.monotonic() > deadline:
            raise FeedError("The calendar takes too long to read.")
        found = []
        try:
            for occurrence in series.between(lower, upper):
                tally.occurrences += 1
                if tally.occurrences > MAX_OCCURRENCES:
                    tally.check()
                found.append(occurrence)
        except tuple(_Query.suppressed_errors):
            continue
        yield from found


def _instant(value: date | datetime, calendar_tz: tzinfo) -> datetime:
    """An occurrence's start or end in UTC; a date is midnight and a floating time a wall
    time, both in the calendar's zone (fold=0, as in scheduling.zones)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=calendar_tz)
    return value.astimezone(UTC)


def merged(spans: Iterable[tuple[datetime, datetime]]) -> list[Interval]:
    """Sort the spans and merge those that overlap or touch; empty ones drop out."""
    merged: list[list[datetime]] = []
    for span_start, span_end in sorted(spans):
        if span_start >= span_end:
            continue
        if merged and span_start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span_end)
        else:
            merged.append([span_start, span_end])
    return [Interval(span_start, span_end) for span_start, span_end in merged]
