"""iCalendar files for bookings (RFC 5545), built with `icalendar`.

Times are UTC with `Z` (no TZID without a VTIMEZONE: Outlook shifts those by an hour). The
download is METHOD:PUBLISH; mails carry METHOD:REQUEST, and METHOD:CANCEL with the same UID
and a higher SEQUENCE, so calendar apps update the event instead of duplicating it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from icalendar import Calendar, Event, vCalAddress, vText

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


def _address(email: str, name: str, role: str | None = None) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    # A parameter value cannot hold a double quote (RFC 5545); RFC 6868's ^' escape is not
    # understood by Outlook or vobject, so a quote becomes an apostrophe.
    address.params["CN"] = vText(name.replace('"', "'"))
    if role:
        address.params["ROLE"] = vText(role)
        address.params["PARTSTAT"] = vText("ACCEPTED")
    return address


def booking_event(
    booking: Booking,
    base_url: str,
    now: datetime | None = None,
    manage_url: str | None = None,
    attendees: bool = True,
) -> Event:
    """The VEVENT of a booking; its UID is stable across changes, SEQUENCE grows.
    `manage_url`: a guest's tokened link, for the guest's copy (the plain one asks to sign
    in, which a guest cannot). `attendees=False` leaves out ORGANIZER and ATTENDEE."""
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

    event = Event()
    event.add("uid", booking_uid(booking.uid, base_url))
    event.add("dtstamp", (now or datetime.now(UTC)).replace(microsecond=0))
    event.add("dtstart", booking.start_at)
    event.add("dtend", booking.end_at)
    event.add("summary", title)
    event.add("description", "\n".join(description_lines))
    if video_url:
        event.add("location", video_url)
        event.add("url", video_url)
    if attendees:
        event.add("organizer", _address(expert.email, expert.display_name))
        event.add("attendee", _address(booking.email, booking.name, role="REQ-PARTICIPANT"))
    event.add("sequence", booking.sequence)
    event.add("status", EVENT_STATUS.get(booking.status, "CONFIRMED"))
    event.add("created", booking.created_at.replace(microsecond=0))
    event.add("last-modified", booking.updated_at.replace(microsecond=0))
    return event


def calendar_file(
    bookings: Iterable[Booking],
    base_url: str,
    method: str = "PUBLISH",
    name: str | None = None,
    manage_url: str | None = None,
) -> bytes:
    """A VCALENDAR with one VEVENT per booking, as bytes (CRLF, folded at 75 octets).
    `manage_url`: a guest's link, for a guest's copy of their one booking."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    if name:
        calendar.add("x-wr-calname", name)
    for booking in bookings:
        calendar.add_component(booking_event(booking, base_url, manage_url=manage_url))
    return calendar.to_ical()


def calendar_object(booking: Booking, base_url: str) -> bytes:
    """The booking as a CalDAV calendar object, for the expert's own calendar: no METHOD
    (RFC 4791 forbids one in a stored object) and no ORGANIZER or ATTENDEE, or the server's
    scheduling (Nextcloud's, iCloud's) would mail the client an invitation of its own."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add_component(booking_event(booking, base_url, attendees=False))
    return calendar.to_ical()


def booking_uid(uid: str, base_url: str) -> str:
    """A booking's iCalendar UID: stable across changes, the same in every file and calendar."""
    return f"{uid}@{urlsplit(base_url).hostname or 'expertbook'}"
