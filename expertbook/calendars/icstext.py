"""What busy times need from raw iCalendar text, found before any parser sees it.

icalendar spends tens of microseconds on each content line, so this pass keeps only the
lines busy times are made of (see `combined_text`), checks the file is iCalendar at all, and
applies the size limits. Pure string work: no Flask, no database, no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from ..scheduling.zones import is_valid_timezone

MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_FEED_EVENTS = 20_000
# Each kept VEVENT says which file it came from, so busy times can be told apart by object.
FILE_PROPERTY = "X-EXPERTBOOK-FILE"
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


class FeedError(Exception):
    """The data cannot be used; `message` says why in words an expert understands."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def too_many_events() -> FeedError:
    return FeedError(f"The calendar has more than {MAX_FEED_EVENTS:,} events.")


def combined_text(
    files: list[bytes], first_day: str, last_day: str
) -> tuple[str, list[OneOff], int]:
    """One VCALENDAR holding only what busy times need from all the files, each VEVENT
    tagged with the index of its file (FILE_PROPERTY), and the plain one-off events apart
    (`one_off`), for reading without icalendar; and how many events the files hold.

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
    one_offs: list[OneOff] = []
    event_count = 0
    for index, file in enumerate(files):
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
                        raise too_many_events()
            elif not path or path[-1] != component:
                raise FeedError(f"The calendar file is damaged: END:{component[:40]} out of place.")
            if len(path) > 1 and tuple(path) in _KEPT:
                block.append(f"{name}:{component}")
                if name == "BEGIN" and len(path) == 2 and component == "VEVENT":
                    block.append(f"{FILE_PROPERTY}:{index}")
            if name == "END":
                path.pop()
                if len(path) == 1 and block:
                    _file_block(block, zones, events, one_offs, first_day, last_day)
                    block = []
            kept = _KEPT.get(tuple(path), frozenset())
        if path:
            raise FeedError(f"The calendar file is damaged: {path[-1][:40]} is not closed.")
    zone_lines = [line for block in zones.values() for line in block]
    text = "\r\n".join(["BEGIN:VCALENDAR", *header[:1], *zone_lines, *events, "END:VCALENDAR"])
    return text, one_offs, event_count


@dataclass(frozen=True)
class OneOff:
    """A single event whose lines say all its busy time needs (a start and an end in UTC,
    in an IANA zone, or as dates), read without icalendar: most events of a calendar are
    such, and icalendar would spend most of a large calendar's reading on them."""

    file: int
    uid: str
    start: str  # the DTSTART value: YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ
    end: str
    tzid: str  # the IANA zone of both, or "" (UTC, a date, or floating)
    blocks: bool  # neither TRANSP:TRANSPARENT nor STATUS:CANCELLED


_RECURRING = frozenset(["RRULE", "RDATE", "EXDATE", "RECURRENCE-ID", "DURATION", "EXRULE"])
_DATE = re.compile(r"\d{8}")
_DATE_TIME = re.compile(r"\d{8}T\d{6}Z?")


def one_off(event: list[str]) -> OneOff | None:
    """The event as a OneOff, or None when anything about it is not plain (a rule, a
    DURATION, a quoted parameter, a Windows or custom zone, a missing end...): icalendar
    reads those."""
    found: dict[str, str] = {}
    params: dict[str, str] = {}
    for line in event[1:-1]:
        if '"' in line:
            return None
        name = _NAME.match(line).group(1).upper()
        if name in _RECURRING or name in found:
            return None
        head, _, value = line.partition(":")
        found[name] = value.strip()
        params[name] = head[len(name) + 1 :].upper() if len(head) > len(name) else ""
    start, end = found.get("DTSTART", ""), found.get("DTEND", "")
    zones = {params.get("DTSTART", ""), params.get("DTEND", "")}
    if len(zones) != 1:
        return None
    (param,) = zones
    tzid = ""
    if param == "VALUE=DATE":
        plain = _DATE.fullmatch(start) and _DATE.fullmatch(end)
    else:
        plain = _DATE_TIME.fullmatch(start) and _DATE_TIME.fullmatch(end)
        plain = plain and start.endswith("Z") == end.endswith("Z")
        if param:
            tzid = param[5:] if param.startswith("TZID=") else ""
            name = found_zone(event, tzid)
            if not name or start.endswith("Z"):
                return None
            tzid = name
    if not plain:
        return None
    return OneOff(
        file=int(found.get(FILE_PROPERTY, "-1")),
        uid=found.get("UID", ""),
        start=start,
        end=end,
        tzid=tzid,
        blocks=found.get("TRANSP", "").upper() != "TRANSPARENT"
        and found.get("STATUS", "").upper() != "CANCELLED",
    )


def found_zone(event: list[str], upper_tzid: str) -> str:
    """The IANA name a DTSTART's TZID gives (as written: parameters were upper-cased), or
    "" when it is not one."""
    for line in event:
        head = line.partition(":")[0]
        index = head.upper().find("TZID=")
        if index >= 0 and head[index + 5 :].upper() == upper_tzid:
            name = head[index + 5 :]
            return name if is_valid_timezone(name) else ""
    return ""


def _file_block(
    block: list[str],
    zones: dict[str, list[str]],
    events: list[str],
    one_offs: list[OneOff],
    first_day: str,
    last_day: str,
) -> None:
    """File a finished top-level VEVENT under one_offs if it is plain, else under events,
    unless it is a one-off far from the window; a VTIMEZONE under zones if icalendar needs
    it."""
    if block[0] == "BEGIN:VEVENT":
        if _far_one_off(block, first_day, last_day):
            return
        plain = one_off(block)
        if plain is not None:
            one_offs.append(plain)
        else:
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


def first_line(error: Exception) -> str:
    # icalendar quotes the offending line; a sentence is enough, not a page of it.
    line = (str(error).splitlines() or ["unreadable content"])[0]
    return line if len(line) <= 120 else line[:117] + "..."
