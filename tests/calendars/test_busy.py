"""Stored busy times block slots and bookings exactly like a confirmed booking without
buffers of its own, on both databases; removing the calendar frees them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from expertbook.booking import SlotUnavailable, book_slot, check_request
from expertbook.calendars.connections import remove_connection
from expertbook.calendars.models import BusyTime, CalendarConnection, ConnectedCalendar
from expertbook.calendars.store import PIECE, pieces
from expertbook.extensions import db
from expertbook.ics import booking_uid
from expertbook.slots import is_bookable, slots_for
from tests.booking_fixtures import NOW, day_ahead


def add_busy(expert, *intervals: tuple) -> CalendarConnection:
    """A connected ICS calendar of `expert` holding these busy times (stored as a sync would)."""
    connection = CalendarConnection(expert_id=expert.id, kind="ics", url="https://cal.test/x.ics")
    calendar = ConnectedCalendar(expert_id=expert.id, url=connection.url, name="x", busy_digest="d")
    connection.calendars.append(calendar)
    db.session.add(connection)
    db.session.flush()
    for first, last in pieces([(int(a.timestamp()), int(b.timestamp())) for a, b in intervals]):
        db.session.add(
            BusyTime(calendar_id=calendar.id, expert_id=expert.id,
                     start_at=datetime.fromtimestamp(first, UTC),
                     end_at=datetime.fromtimestamp(last, UTC))
        )  # fmt: skip
    db.session.commit()
    return connection


def book(event_type, start):
    request = check_request(start, "Ann", "ann@example.com")
    return book_slot(event_type, request, client=None, now=NOW, respond=lambda b, t: {})


@pytest.fixture
def expert(any_app, coach):
    return coach


@pytest.fixture
def buffered(expert, make_event_type):
    """30 minutes with 15 minutes of buffer on each side."""
    return make_event_type(
        expert, slug="buffered", duration_minutes=30, buffer_before_minutes=15,
        buffer_after_minutes=15,
    )  # fmt: skip


def test_busy_time_blocks_overlapping_slots_and_not_the_neighbours(expert, sync):
    busy_start = day_ahead(3, 10)
    add_busy(expert, (busy_start, busy_start + timedelta(hours=1)))
    day = busy_start.date()
    starts = {s.start for s in slots_for(sync, day_from=day, day_to=day, viewer_tz="UTC", now=NOW)}
    assert day_ahead(3, 9, 30) in starts  # ends as the busy time starts: back to back is fine
    assert day_ahead(3, 10) not in starts
    assert day_ahead(3, 10, 30) not in starts
    assert day_ahead(3, 11) in starts


def test_the_slots_buffers_reach_a_busy_time_but_it_has_none_of_its_own(expert, buffered):
    busy_start = day_ahead(3, 10)
    add_busy(expert, (busy_start, busy_start + timedelta(hours=1)))
    # Its 15-minute buffer after would run into the busy time; 09:15 ends 09:45 +15 = 10:00.
    assert not is_bookable(buffered, day_ahead(3, 9, 30), NOW)
    assert is_bookable(buffered, day_ahead(3, 9), NOW)
    assert is_bookable(buffered, day_ahead(3, 11, 30), NOW)
    assert not is_bookable(buffered, day_ahead(3, 11), NOW)


def test_a_booking_inside_busy_time_is_refused_in_the_transaction(expert, sync):
    start = day_ahead(4, 14)
    add_busy(expert, (start - timedelta(minutes=5), start + timedelta(minutes=5)))
    with pytest.raises(SlotUnavailable):
        book(sync, start)
    assert book(sync, start + timedelta(minutes=30)).booking.start_at == start + timedelta(
        minutes=30
    )


def test_a_multi_day_busy_time_blocks_every_day_it_covers(expert, sync):
    holiday = day_ahead(2, 0)
    add_busy(expert, (holiday, holiday + timedelta(days=3)))
    for day in range(2, 5):
        first = day_ahead(day, 0).date()
        assert slots_for(sync, day_from=first, day_to=first, viewer_tz="UTC", now=NOW) == []
    after = day_ahead(5, 0).date()
    assert slots_for(sync, day_from=after, day_to=after, viewer_tz="UTC", now=NOW)


def test_removing_the_connection_frees_its_busy_times(expert, sync):
    start = day_ahead(4, 14)
    connection = add_busy(expert, (start, start + timedelta(hours=1)))
    assert not is_bookable(sync, start, NOW)
    assert remove_connection(connection) is True
    assert is_bookable(sync, start, NOW)
    assert db.session.query(BusyTime).count() == 0


def test_pieces_are_never_longer_than_a_booking_and_cover_the_same_time():
    start = day_ahead(1, 7, 13)
    whole = (int(start.timestamp()), int((start + timedelta(days=2, minutes=7)).timestamp()))
    cut = pieces([whole])
    assert all(last - first <= PIECE.total_seconds() for first, last in cut)
    assert cut[0][0] == whole[0] and cut[-1][1] == whole[1]
    assert all(a[1] == b[0] for a, b in zip(cut, cut[1:], strict=False))


def test_a_bookings_uid_is_the_same_in_every_file_and_calendar():
    assert booking_uid("0123456789abcdef01234567", "https://book.example:8443/x") == (
        "0123456789abcdef01234567@book.example"
    )
