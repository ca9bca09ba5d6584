"""Calendar files: fields, escaping and folding, read back by two independent parsers."""

from datetime import timedelta

import icalendar
import vobject

from expertbook.booking import cancel_booking, reschedule_booking
from expertbook.extensions import db
from expertbook.ics import calendar_file
from expertbook.models import Booking
from tests.booking_fixtures import NOW, day_ahead

BASE = "http://testserver"


def parse_both(raw: bytes):
    ical = icalendar.Calendar.from_ical(raw)
    vcal = vobject.readOne(raw.decode())
    return ical, next(iter(ical.walk("VEVENT"))), vcal, vcal.vevent


def test_booking_file_fields(app, make_booking, coach):
    booking, _ = make_booking(day_ahead(2, 10))
    raw = calendar_file([booking], BASE)
    ical, event, vcal, vevent = parse_both(raw)
    assert ical["METHOD"] == "PUBLISH" and vcal.method.value == "PUBLISH"
    assert event["UID"] == vevent.uid.value == f"{booking.uid}@testserver"
    assert event.decoded("DTSTART") == vevent.dtstart.value == booking.start_at
    assert event.decoded("DTEND") == vevent.dtend.value == booking.end_at
    assert b"DTSTART:" in raw and b"Z\r\n" in raw and b"TZID" not in raw  # UTC, no TZID
    assert event["STATUS"] == vevent.status.value == "CONFIRMED"
    assert int(event["SEQUENCE"]) == int(vevent.sequence.value) == 0
    assert "DTSTAMP" in event
    assert event["LOCATION"] == event["URL"] == vevent.location.value == booking.video_url
    assert str(event["ORGANIZER"]) == f"mailto:{coach.email}"
    assert str(event["ATTENDEE"]) == f"mailto:{booking.email}"
    assert vevent.organizer.params["CN"] == [coach.display_name.replace('"', "'")]
    assert vevent.attendee.params["CN"] == [booking.name.replace('"', "'")]
    description = vevent.description.value
    assert booking.video_url in description and booking.notes in description


def test_text_is_escaped_and_folded(app, make_booking):
    booking, _ = make_booking(day_ahead(2, 10), name='Zoë, "Q" O\'Neil; 🎉 ' + "é" * 80)
    raw = calendar_file([booking], BASE)
    assert all(len(line) <= 75 for line in raw.split(b"\r\n")), "lines fold at 75 octets"
    assert b"\\," in raw and b"\\;" in raw
    _ical, event, _vcal, vevent = parse_both(raw)
    assert booking.name in str(event["SUMMARY"])
    assert booking.name in vevent.summary.value
    assert vevent.summary.value == str(event["SUMMARY"])


def test_sequence_grows_and_cancel_says_so(app, make_booking):
    booking, _ = make_booking(day_ahead(2, 10))
    reschedule_booking(booking, booking.start_at + timedelta(hours=1), now=NOW)
    cancel_booking(booking, reason="Sick, sorry", now=NOW)
    raw = calendar_file([booking], BASE, method="CANCEL")
    ical, event, vcal, vevent = parse_both(raw)
    assert ical["METHOD"] == "CANCEL"
    assert int(event["SEQUENCE"]) == int(vevent.sequence.value) == 2
    assert event["STATUS"] == vevent.status.value == "CANCELLED"
    assert event["UID"] == f"{booking.uid}@testserver"


def test_download_headers(client, make_booking):
    booking, token = make_booking(day_ahead(2, 10))
    response = client.get(f"/bookings/{booking.uid}.ics?token={token}")
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    parse_both(response.data)


def test_feed_lists_upcoming_only_and_regenerating_kills_the_old_url(
    client, auth, coach, make_booking
):
    import re

    past, _ = make_booking(day_ahead(-1, 10), now=NOW - timedelta(days=2))
    soon, _ = make_booking(day_ahead(2, 10))
    gone, _ = make_booking(day_ahead(2, 12))
    cancel_booking(gone, now=NOW)
    auth.login("coach")
    page = auth.post("/calendar/regenerate", token_from="/dashboard/")
    url = re.search(r'value="(http://testserver/calendar/[^"]+\.ics)"', page.text).group(1)
    path = url.removeprefix(BASE)
    feed = client.get(path)
    assert feed.status_code == 200
    uids = {str(e["UID"]) for e in icalendar.Calendar.from_ical(feed.data).walk("VEVENT")}
    assert uids == {f"{soon.uid}@testserver"}
    auth.post("/calendar/regenerate", token_from="/dashboard/")
    assert client.get(path).status_code == 404
    assert client.get("/calendar/" + "x" * 43 + ".ics").status_code == 404


def test_control_characters_never_reach_the_calendar_file(any_app, sync):
    from expertbook.booking import book_slot, check_request

    request = check_request(day_ahead(3, 10), "Ann", "ann@example.com", "a\x0bb\x1bc\x7fd\x0c")
    result = book_slot(sync, request, client=None, now=NOW, respond=lambda b, t: {})
    booking = db.session.get(Booking, result.booking.id)  # the session's, as a view's
    cancel_booking(booking, reason="ill\x1b\x07 today", now=NOW)
    text = calendar_file([booking], BASE, method="CANCEL").decode()
    assert not any(ord(ch) < 32 and ch not in "\r\n" or ord(ch) == 127 for ch in text)
    assert "abcd" in text and "ill today" in text
