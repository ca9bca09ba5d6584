"""Calendar data for the benches: what a busy expert's calendar looks like, as iCalendar text.

`calendar_text(count, seed, day0)` gives one VCALENDAR of `count` events: a tenth of them
weekly series (some ending, some with an exception date), the rest single events spread
over the 60 days from `day0` (about 80 a day for 5,000, between 06:00 and 20:00 UTC); a mix
of lengths from 15 minutes to 4 hours; one in fifty all-day (some over several days, most of
them marked free, as calendars make all-day events); one in twenty timed events marked free;
times in UTC and in Europe/Berlin (with its VTIMEZONE, as calendar exports carry it); with
the summaries, descriptions, places and attendees real events have. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

SPREAD_DAYS = 60
RECURRING_SHARE = 10  # one event in ten is a weekly series
LENGTHS = [15, 30, 30, 30, 45, 60, 60, 60, 60, 90, 120, 180, 240]  # minutes, weighted

_BERLIN = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE"""

_WORDS = [
    *("review", "planning", "sync", "design", "budget", "interview", "onboarding", "retro"),
    *("client", "call", "lunch", "workshop", "standup", "demo", "dentist", "flight"),
    *("training", "quarterly", "roadmap", "hiring", "offsite"),
]


def _stamp(value: datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%S")


def _day(value: date) -> str:
    return value.strftime("%Y%m%d")


def event_text(uid: str, start: datetime, minutes: int, rng: random.Random) -> str:
    """One VEVENT (timed, UTC) with the usual decoration; for adding a change to a calendar."""
    end = start + timedelta(minutes=minutes)
    return "\r\n".join(
        [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"DTSTAMP:{_stamp(start)}Z",
            f"DTSTART:{_stamp(start)}Z",
            f"DTEND:{_stamp(end)}Z",
            *_decoration(rng),
            "END:VEVENT",
        ]
    )


def wrap(*events: str, zoned: bool = False) -> str:
    """A VCALENDAR around the given VEVENT texts (with the Berlin zone if `zoned`)."""
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//ExpertBook bench//EN",
            *([_BERLIN.replace("\n", "\r\n")] if zoned else []),
            *events,
            "END:VCALENDAR",
            "",
        ]
    )


def _decoration(rng: random.Random) -> list[str]:
    title = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4))).capitalize()
    lines = [
        f"SUMMARY:{title}",
        "DESCRIPTION:" + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 40))),
        f"LOCATION:Room {rng.randint(1, 40)}",
        f"SEQUENCE:{rng.randint(0, 3)}",
    ]
    for n in range(rng.choice([0, 0, 1, 2, 4])):
        lines.append(f"ATTENDEE;CN=Person {n};PARTSTAT=ACCEPTED:mailto:person{n}@example.com")
    if rng.random() < 0.3:
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT10M", "END:VALARM"]
    return lines


def calendar_text(count: int, seed: int, day0: date, *, zoned: bool = True) -> str:
    """One VCALENDAR holding `count` events around `day0` (see the module's docstring);
    without `zoned`, every time is in UTC and there is no VTIMEZONE.

    Radicale (vobject) spends about 40 ms per stored object on a TZID (it writes a VTIMEZONE
    into each, walking the zone's rules from 1970), so calendars set up there are in UTC:
    5,000 zoned events would take minutes to store."""
    rng = random.Random(seed)
    tz = ";TZID=Europe/Berlin:" if zoned else ":"
    utc = "" if zoned else "Z"
    events = []
    for i in range(count):
        uid = f"bench-{seed}-{i}@example.com"
        minutes = rng.choice(LENGTHS)
        berlin = zoned and rng.random() < 0.5
        lines = ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20240101T000000Z"]
        if i % RECURRING_SHARE == 0:
            # A weekly series that began up to half a year ago (or begins within the month).
            first = day0 + timedelta(days=rng.randint(-180, 30))
            start = datetime.combine(first, datetime.min.time()) + timedelta(
                minutes=15 * rng.randint(28, 72)
            )
            end = start + timedelta(minutes=minutes)
            lines += [
                f"DTSTART{tz}{_stamp(start)}{utc}",
                f"DTEND{tz}{_stamp(end)}{utc}",
            ]
            rule = "RRULE:FREQ=WEEKLY"
            ending = rng.random()
            if ending < 0.2:
                until = max(first, day0) + timedelta(days=rng.randint(7, 90))
                rule += f";UNTIL={_day(until)}T235959Z"
            elif ending < 0.3:
                rule += f";COUNT={rng.randint(10, 60)}"
            lines.append(rule)
            if rng.random() < 0.2:
                skipped = start + timedelta(weeks=rng.randint(1, 20))
                lines.append(f"EXDATE{tz}{_stamp(skipped)}{utc}")
        elif rng.random() < 0.02:
            first = day0 + timedelta(days=rng.randrange(SPREAD_DAYS))
            days = rng.choice([1, 1, 1, 2, 3])
            lines += [
                f"DTSTART;VALUE=DATE:{_day(first)}",
                f"DTEND;VALUE=DATE:{_day(first + timedelta(days=days))}",
            ]
            if rng.random() < 0.9:  # birthdays, holidays: all-day events are mostly free
                lines.append("TRANSP:TRANSPARENT")
        else:
            start = datetime.combine(
                day0 + timedelta(days=rng.randrange(SPREAD_DAYS)), datetime.min.time()
            ) + timedelta(minutes=15 * rng.randint(24, 80))
            end = start + timedelta(minutes=minutes)
            if berlin:
                lines += [
                    f"DTSTART;TZID=Europe/Berlin:{_stamp(start)}",
                    f"DTEND;TZID=Europe/Berlin:{_stamp(end)}",
                ]
            else:
                lines += [f"DTSTART:{_stamp(start)}Z", f"DTEND:{_stamp(end)}Z"]
        if "TRANSP:TRANSPARENT" not in lines and rng.random() < 0.05:
            lines.append("TRANSP:TRANSPARENT")
        lines += [*_decoration(rng), "END:VEVENT"]
        events.append("\r\n".join(lines))
    return wrap(*events)
