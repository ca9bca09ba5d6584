"""Busy times from iCalendar data: an ICS feed, or the event objects of a CalDAV calendar.

Pure: bytes in, UTC intervals out; no Flask, no database, no network. `icalendar` parses,
`x_wr_timezone` applies Google's X-WR-TIMEZONE, `recurring_ical_events` expands RRULE, RDATE,
EXDATE and moved occurrences. Anything that cannot be used becomes a `FeedError` whose message
an expert can read, never another exception.
"""

from __future__ import annotations

import re
import time as clock
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import ClassVar

import x_wr_timezone
from icalendar import Calendar, Component
from icalendar.error import GloballyUniqueTZIDGuessed
from icalendar.prop import vRecur
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from recurring_ical_events import CalendarQuery, ComponentsWithName, EventAdapter, Occurrence

from ..scheduling import Interval
from ..scheduling.zones import as_utc, is_valid_timezone, zone

__all__ = ["MAX_FEED_BYTES", "MAX_FEED_EVENTS", "FeedError", "busy_times"]

MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_FEED_EVENTS = 20_000
# Occurrences inside the (padded) window; a FREQ=MINUTELY rule reaches this in ~70 days.
MAX_OCCURRENCES = 100_000
# dateutil walks every rule from its DTSTART, and caches what it walks, however far before
# the window that is: FREQ=MINUTELY from a year ago is half a million steps (seconds, and
# hundreds of MB) before the window is reached. So rules are priced before expansion.
MAX_RULE_STEPS = 1_000_000
# A rule that can never match (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30) makes dateutil search up
# to the year 9999, seconds per series, which no price foresees; this stops the feed instead.
MAX_EXPAND_SECONDS = 10.0

# Floating and all-day times are read in the calendar's zone, up to 14 hours from UTC, while
# the library compares them with the window as if they were UTC; so it is asked for a day
# more on each side, and the exact clip happens after the conversion.
_PAD = timedelta(days=1)
_EVENT_PROPERTIES = frozenset(
    [
        "UID",
        "DTSTART",
        "DTEND",
        "DURATION",
        "RRULE",
        "RDATE",
        "EXDATE",
        "RECURRENCE-ID",
        "SEQUENCE",
        "TRANSP",
        "STATUS",
    ]
)
_ZONE_RULE_PROPERTIES = frozenset(["DTSTART", "RRULE", "RDATE", "TZOFFSETFROM", "TZOFFSETTO"])
# Where in the component tree a line is kept, and which properties there.
_KEPT = {
    ("VCALENDAR",): frozenset({"X-WR-TIMEZONE"}),
    ("VCALENDAR", "VEVENT"): _EVENT_PROPERTIES,
    ("VCALENDAR", "VTIMEZONE"): frozenset({"TZID"}),
    ("VCALENDAR", "VTIMEZONE", "STANDARD"): _ZONE_RULE_PROPERTIES,
    ("VCALENDAR", "VTIMEZONE", "DAYLIGHT"): _ZONE_RULE_PROPERTIES,
}
_NAME = re.compile(r"([A-Za-z0-9-]+)[;:]")
_FOLD = re.compile(r"\r?\n[ \t]")
_RULE_PERIOD = {
    "SECONDLY": timedelta(seconds=1),
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
    "MONTHLY": timedelta(days=28),
    "YEARLY": timedelta(days=365),
}


class FeedError(Exception):
    """The data cannot be used; `message` says why in words an expert understands."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
    """A VEVENT that also says whether it blocks time (TRANSP and STATUS)."""

    @property
    def blocks_time(self) -> bool:
        event = self._component
        return (
            str(event.get("TRANSP", "")).upper() != "TRANSPARENT"
            and str(event.get("STATUS", "")).upper() != "CANCELLED"
        )


class _Occurrence(Occurrence):
    """An occurrence that remembers whether its component blocks time (a moved or
    cancelled occurrence has a component of its own)."""

    def __init__(self, adapter: _EventAdapter, start=None, end=None, sequence: int = -1):
        super().__init__(adapter, start, end, sequence)
        self.blocks_time = adapter.blocks_time


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
    start, end = as_utc(start, "start"), as_utc(end, "end")
    files = [data] if isinstance(data, bytes | bytearray) else data
    if sum(len(file) for file in files) > MAX_FEED_BYTES:
        raise FeedError(f"The calendar is larger than {MAX_FEED_BYTES // (1024 * 1024)} MB.")
    calendar = _parsed(files, start, end) if files else Calendar()
    x_wr_name = str(calendar.get("X-WR-TIMEZONE", ""))
    calendar_tz = zone(x_wr_name if is_valid_timezone(x_wr_name) else default_tz)

    # Events without a start, and ExpertBook's own, are left out before the (costly) rules.
    calendar.subcomponents = [
        event
        for event in calendar.subcomponents
        if event.name == "VEVENT"
        and "DTSTART" in event
        and not is_own_uid(str(event.get("UID", "")))
    ]
    calendar.subcomponents = _priced(calendar.subcomponents, end)
    query = _Query(
        calendar,
        components=[ComponentsWithName("VEVENT", _EventAdapter, occurrence=_Occurrence)],
        skip_bad_series=True,
    )
    spans = []
    for occurrence in _occurrences(query, start - _PAD, end + _PAD):
        if occurrence.blocks_time:
            span_start = _instant(occurrence.start, calendar_tz)
            span_end = _instant(occurrence.end, calendar_tz)
            if span_start < end and start < span_end:
                spans.append((max(span_start, start), min(span_end, end)))
    return _merged(spans)


def _parsed(files: list[bytes], start: datetime, end: datetime) -> Calendar:
    """Parse the files as one calendar, X-WR-TIMEZONE applied."""
    text = _combined_text(
        files, (start - 2 * _PAD).strftime("%Y%m%d"), (end + 2 * _PAD).strftime("%Y%m%d")
    )
    try:
        # A TZID like "/freeassociation.sourceforge.net/Europe/Berlin" means Europe/Berlin;
        # icalendar reads it so, and warns that it guessed.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GloballyUniqueTZIDGuessed)
            calendar = Calendar.from_ical(text)
    except ValueError as error:  # icalendar's word for a line it cannot split
        raise FeedError(f"The calendar file is damaged: {_first_line(error)}") from None
    name = str(calendar.get("X-WR-TIMEZONE", ""))
    if is_valid_timezone(name):
        calendar = x_wr_timezone.to_standard(calendar, timezone=zone(name))
    return calendar


def _combined_text(files: list[bytes], first_day: str, last_day: str) -> str:
    """One VCALENDAR holding only what busy times need from all the files.

    icalendar spends tens of microseconds on each content line, so descriptions, attendees,
    alarms and to-dos are dropped before it sees them, and so are one-off events that are
    days away from the window (`first_day` to `last_day`, YYYYMMDD, padded by the caller):
    a calendar is mostly its past. A VTIMEZONE is kept once, and only for
    a TZID icalendar cannot name by itself (IANA and Windows names resolve without one). That
    also keeps calendars apart: icalendar caches a VTIMEZONE for the whole process under its
    TZID, first one wins, so another feed's "W. Europe Standard Time" cannot shift this one.
    The VTIMEZONEs go first: icalendar parses everything twice when one follows an event.
    """
    header: list[str] = []
    zones: dict[str, list[str]] = {}
    events: list[str] = []
    event_count = 0
    for file in files:
        path: list[str] = []
        kept: frozenset[str] = frozenset()  # the properties kept where `path` points
        block: list[str] = []  # the kept lines of the VEVENT or VTIMEZONE being read
        for number, line in enumerate(_content_lines(_checked_text(file)), start=1):
            match = _NAME.match(line)
            if match is None:
                raise FeedError(
                    f"The calendar file is damaged: line {number} is not an iCalendar line."
                )
            name = match.group(1).upper()
            if name != "BEGIN" and name != "END":
                if name in kept:
                    (block if block else header).append(line)
                continue
            component = line[len(name) + 1 :].strip().upper()
            if name == "BEGIN":
                path.append(component)
                if len(path) == 2 and component == "VEVENT":
                    event_count += 1
                    if event_count > MAX_FEED_EVENTS:
                        raise FeedError(f"The calendar has more than {MAX_FEED_EVENTS:,} events.")
            elif not path or path[-1] != component:
                raise FeedError(f"The calendar file is damaged: END:{component[:40]} out of place.")
            if len(path) > 1 and tuple(path) in _KEPT:
                block.append(f"{name}:{component}")
            if name == "END":
                path.pop()
                if len(path) == 1 and block:
                    _file_block(block, zones, events, first_day, last_day)
                    block = []
            kept = _KEPT.get(tuple(path), frozenset())
        if path:
            raise FeedError(f"The calendar file is damaged: {path[-1][:40]} is not closed.")
    zone_lines = [line for block in zones.values() for line in block]
    return "\r\n".join(["BEGIN:VCALENDAR", *header[:1], *zone_lines, *events, "END:VCALENDAR"])


def _file_block(
    block: list[str], zones: dict[str, list[str]], events: list[str], first_day: str, last_day: str
) -> None:
    """File a finished top-level VEVENT under events unless it is a one-off far from the
    window, a VTIMEZONE under zones if icalendar needs it."""
    if block[0] == "BEGIN:VEVENT":
        if not _far_one_off(block, first_day, last_day):
            events.extend(block)
        return
    tzid = next((line[5:].strip() for line in block if line[:5].upper() == "TZID:"), "")
    name = tzid.strip("/")
    if tzid and not is_valid_timezone(name) and name not in WINDOWS_TO_OLSON:
        zones.setdefault(tzid, block)


def _far_one_off(event: list[str], first_day: str, last_day: str) -> bool:
    """True when the VEVENT's lines show a single event ending before `first_day` or
    starting after `last_day`; anything unclear (a rule, a DURATION, a date that is not
    YYYYMMDD...) is False and left to icalendar."""
    days = {}
    for line in event[1:-1]:
        name = line[: _NAME.match(line).end() - 1].upper()
        if name in ("RRULE", "RDATE", "RECURRENCE-ID", "DURATION"):
            return False
        if name in ("DTSTART", "DTEND"):
            # Date and date-time values hold no colon, so the value follows the last one.
            days[name] = line.rsplit(":", 1)[1].strip()[:8]
    first = days.get("DTSTART", "")
    last = days.get("DTEND", first)
    if not (len(first) == len(last) == 8 and first.isdigit() and last.isdigit()):
        return False
    return last < first_day or first > last_day


def _content_lines(text: str) -> list[str]:
    """The unfolded content lines of `text` (RFC 5545 3.1), blank ones left out."""
    return [line.rstrip("\r") for line in _FOLD.sub("", text).split("\n") if line.strip()]


def _checked_text(file: bytes) -> str:
    """The file as text, or FeedError when it does not look like an iCalendar file."""
    text = bytes(file).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not text:
        raise FeedError("The calendar file is empty.")
    if text.startswith("<"):
        raise FeedError("The address returned a web page, not an iCalendar file.")
    if text[:15].upper() != "BEGIN:VCALENDAR":
        raise FeedError("The address did not return an iCalendar file.")
    if text.rstrip()[-13:].upper() != "END:VCALENDAR":
        raise FeedError("The calendar file is damaged: it ends before END:VCALENDAR.")
    return text


def _first_line(error: Exception) -> str:
    # icalendar quotes the offending line; a sentence is enough, not a page of it.
    line = (str(error).splitlines() or ["unreadable content"])[0]
    return line if len(line) <= 120 else line[:117] + "..."


def _priced(events: list[Component], end: datetime) -> list[Component]:
    """The events, less those with a rule dateutil would never finish (INTERVAL=0).

    Raises:
        FeedError: when the rules would take dateutil too many steps to walk.
    """
    kept = []
    steps = 0
    for event in events:
        rules = event.get("RRULE", [])
        rule_steps = [
            _rule_steps(rule, event["DTSTART"], end)
            for rule in (rules if isinstance(rules, list) else [rules])
            if isinstance(rule, vRecur)
        ]
        if None in rule_steps:
            continue
        steps += sum(rule_steps)
        if steps > MAX_RULE_STEPS:
            raise FeedError("The calendar repeats events too often to be read.")
        kept.append(event)
    return kept


def _rule_steps(rule: vRecur, dtstart: object, end: datetime) -> int | None:
    """About how many steps dateutil takes for `rule` from DTSTART to `end` (or UNTIL, or
    COUNT), an estimate for the limit, not an expansion; None for a rule that would never
    end."""
    interval = rule.get("INTERVAL", [1])[0]
    if not isinstance(interval, int) or interval < 1:
        return None  # dateutil loops forever on INTERVAL=0
    first = getattr(dtstart, "dt", None)
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


def _occurrences(query: _Query, lower: datetime, upper: datetime) -> Iterator[Occurrence]:
    """Yield the occurrences touching [lower, upper), one series at a time and lazily, so the
    limits stop a flood before it is built; a series the library finds broken is left out."""
    deadline = clock.monotonic() + MAX_EXPAND_SECONDS
    count = 0
    for series in query.series:
        if clock.monotonic() > deadline:
            raise FeedError("The calendar takes too long to read.")
        found = []
        try:
            for occurrence in series.between(lower, upper):
                count += 1
                if count > MAX_OCCURRENCES:
                    raise FeedError(
                        f"The calendar has more than {MAX_OCCURRENCES:,} events in the "
                        "weeks it is read for."
                    )
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


def _merged(spans: list[tuple[datetime, datetime]]) -> list[Interval]:
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
