"""iCalendar files for bookings (RFC 5545).

Times are UTC with `Z` (no TZID without a VTIMEZONE: Outlook shifts those by an hour). The
download is METHOD:PUBLISH; mails carry METHOD:REQUEST, and METHOD:CANCEL with the same UID
and a higher SEQUENCE, so calendar apps update the event instead of duplicating it.

The files are written line by line here, byte for byte what `icalendar` writes for the same
properties (tests/test_ics_reference.py holds them to it): a worker writes one per mail,
and icalendar's objects (a property object and a parameter dict per line, then its folding
one character at a time) cost some 400 µs a file, against 30-45 µs now. icalendar still
writes what is rare or fiddly: the ORGANIZER and ATTENDEE lines (parameter quoting,
RFC 6868), kept once written, and a time in any zone but UTC.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from icalendar import Event, vCalAddress, vText
from icalendar.parser import Contentline

from .models import Booking
from .text import multiline

PRODID = "-//ExpertBook//Booking//EN"
# A booking's status -> its VEVENT's STATUS: a request the expert has not confirmed yet is
# TENTATIVE; a declined one is as gone as a cancelled one.
EVENT_STATUS = {
    Booking.CONFIRMED: "CONFIRMED",
    Booking.PENDING: "TENTATIVE",
    Booking.CANCELLED: "CANCELLED",
    Booking.DECLINED: "CANCELLED",
}
# A content line longer than this many octets is folded (RFC 5545: 75 with the break's
# space; icalendar folds before the 75th).
_FOLD_AT = 74


def calendar_file(
    bookings: Iterable[Booking],
    base_url: str,
    method: str = "PUBLISH",
    name: str | None = None,
    manage_url: str | None = None,
) -> bytes:
    """A VCALENDAR with one VEVENT per booking, as bytes (CRLF, folded at 75 octets).
    `manage_url`: a guest's link, for a guest's copy of their one booking."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN"]
    lines.append(f"METHOD:{_text(method)}")
    if name:
        # An X- property is written as it is, unescaped (icalendar knows no type for it).
        lines.append(f"X-WR-CALNAME:{name}")
    for booking in bookings:
        lines += event_lines(booking, base_url, manage_url=manage_url)
    lines.append("END:VCALENDAR")
    return _file(lines)


def calendar_object(booking: Booking, base_url: str) -> bytes:
    """The booking as a CalDAV calendar object, for the expert's own calendar: no METHOD
    (RFC 4791 forbids one in a stored object) and no ORGANIZER or ATTENDEE, or the server's
    scheduling (Nextcloud's, iCloud's) would mail the client an invitation of its own."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}"]
    lines += event_lines(booking, base_url, attendees=False)
    lines.append("END:VCALENDAR")
    return _file(lines)


def event_lines(
    booking: Booking,
    base_url: str,
    now: datetime | None = None,
    manage_url: str | None = None,
    attendees: bool = True,
) -> list[str]:
    """The VEVENT of a booking as content lines, unfolded, in icalendar's order (its
    canonical properties first, then the rest by name); its UID is stable across changes,
    SEQUENCE grows. `manage_url`: a guest's tokened link, for the guest's copy (the plain
    one asks to sign in, which a guest cannot). `attendees=False` leaves out ORGANIZER and
    ATTENDEE."""
    expert = booking.expert
    title, description, video_url = event_text(booking, base_url, manage_url)
    lines = [
        "BEGIN:VEVENT",
        f"SUMMARY:{_text(title)}",
        _datetime_line("DTSTART", booking.start_at),
        _datetime_line("DTEND", booking.end_at),
        _datetime_line("DTSTAMP", (now or datetime.now(UTC)).replace(microsecond=0)),
        f"UID:{_text(booking_uid(booking.uid, base_url))}",
        f"SEQUENCE:{int(booking.sequence)}",
    ]
    if attendees:
        lines.append(_address_line("ATTENDEE", booking.email, booking.name, role="REQ-PARTICIPANT"))
    lines += [
        _datetime_line("CREATED", booking.created_at.replace(microsecond=0)),
        f"DESCRIPTION:{_text(description)}",
        _datetime_line("LAST-MODIFIED", booking.updated_at.replace(microsecond=0)),
    ]
    if video_url:
        lines.append(f"LOCATION:{_text(video_url)}")
    if attendees:
        lines.append(_address_line("ORGANIZER", expert.email, expert.display_name))
    lines.append(f"STATUS:{_text(EVENT_STATUS.get(booking.status, 'CONFIRMED'))}")
    if video_url:
        lines.append(f"URL:{video_url}")
    lines.append("END:VEVENT")
    return lines


def event_text(booking: Booking, base_url: str, manage_url: str | None) -> tuple[str, str, str]:
    """A booking's SUMMARY, DESCRIPTION (lines joined by a line break) and video link
    (LOCATION and URL; "" until confirmed), as plain text, unescaped."""
    expert = booking.expert
    # The video link only once confirmed: a request's booker has not been accepted yet.
    video_url = booking.video_url if booking.is_confirmed else ""
    title = f"{booking.event_type.title}: {expert.display_name} and {booking.name}"
    description_lines = [f"{booking.event_type.title} with {expert.display_name}."]
    if video_url:
        description_lines.append(f"Join: {video_url}")
    # Cleaned on the way in; again here for rows stored before that (TEXT admits no
    # control characters).
    if booking.notes:
        description_lines.append(f"Notes: {multiline(booking.notes)}")
    if booking.cancel_reason:
        description_lines.append(f"Cancelled: {multiline(booking.cancel_reason)}")
    description_lines.append(f"Manage: {manage_url or f'{base_url}/bookings/{booking.uid}'}")
    return title, "\n".join(description_lines), video_url


def booking_uid(uid: str, base_url: str) -> str:
    """A booking's iCalendar UID: stable across changes, the same in every file and calendar."""
    return f"{uid}@{urlsplit(base_url).hostname or 'expertbook'}"


def _file(lines: list[str]) -> bytes:
    return "".join(f"{_fold(line)}\r\n" for line in lines).encode("utf-8")


def _text(value: str) -> str:
    """A TEXT value escaped as icalendar escapes it (its order matters: a line break
    becomes a backslash and n only after backslashes were doubled)."""
    return (
        value.replace(r"\N", "\n")
        .replace("\\", "\\\\")
        .replace(";", r"\;")
        .replace(",", r"\,")
        .replace("\r\n", r"\n")
        .replace("\n", r"\n")
        .replace("\r", r"\n")
    )


def _datetime_line(name: str, value: datetime) -> str:
    """A DATE-TIME property: a UTC time as ...Z; any other goes through icalendar (which
    turns DTSTAMP, CREATED and LAST-MODIFIED into UTC, and gives the others a TZID)."""
    if value.tzinfo is UTC:
        return (
            f"{name}:{value.year:04}{value.month:02}{value.day:02}"
            f"T{value.hour:02}{value.minute:02}{value.second:02}Z"
        )
    event = Event()
    event.add(name, value)
    return str(event.content_line(name, event[name]))


@functools.lru_cache(maxsize=4096)
def _address_line(name: str, email: str, common_name: str, role: str | None = None) -> str:
    """An ORGANIZER or ATTENDEE line, written by icalendar, kept: both parties' mails of a
    booking change carry the same, and an expert's ORGANIZER recurs in all their files."""
    address = vCalAddress(f"mailto:{email}")
    # A parameter value cannot hold a double quote (RFC 5545); RFC 6868's ^' escape is not
    # understood by Outlook or vobject, so a quote becomes an apostrophe.
    address.params["CN"] = vText(common_name.replace('"', "'"))
    if role:
        address.params["ROLE"] = vText(role)
        address.params["PARTSTAT"] = vText("ACCEPTED")
    return str(Contentline.from_parts(name, address.params, address))


def _fold(line: str) -> str:
    """`line` folded as icalendar folds it: before an octet that would reach the 75th,
    never right after a backslash or caret (a client could read the escape apart)."""
    narrow = line.isascii()
    if narrow and len(line) <= _FOLD_AT:
        return line
    if narrow:
        parts, start = [], 0
        while len(line) - start > _FOLD_AT:
            end = start + _FOLD_AT
            if line[end - 1] in "\\^":
                end -= 1
            parts.append(line[start:end])
            start = end
        parts.append(line[start:])
        return "\r\n ".join(parts)
    parts, current, octets = [], [], 0
    for char in line:
        size = len(char.encode("utf-8"))
        if current and octets + size > _FOLD_AT:
            if len(current) > 1 and current[-1] in "\\^":
                carried = current.pop()
                parts.append("".join(current))
                current, octets = [carried], len(carried.encode("utf-8"))
            else:
                parts.append("".join(current))
                current, octets = [], 0
        current.append(char)
        octets += size
    parts.append("".join(current))
    return "\r\n ".join(parts)
