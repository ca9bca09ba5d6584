"""Which reminder messages a booking change writes, and when they are due (injected clock)."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from expertbook import reminders
from expertbook.booking import cancel_booking, reschedule_booking
from expertbook.extensions import db
from expertbook.models import Booking
from expertbook.outbox import OutboxMessage
from tests.reminders import BERLIN, berlin, book, reminders_of

PENDING, CANCELLED, SENT = OutboxMessage.PENDING, OutboxMessage.CANCELLED, OutboxMessage.SENT


def summary(messages) -> list[tuple]:
    return [(m.event, m.payload["role"], m.due_at, m.status) for m in messages]


# (start in Berlin, hours of Berlin wall clock between the day-before reminder and the start)
DST_CASES = [
    # Clocks go forward in the night before (Sun 29 Mar 2026): 24 h are 25 h on the wall.
    pytest.param((2026, 3, 29, 10, 0), 25, id="spring-forward-between"),
    # Clocks go back in the night before (Sun 25 Oct 2026): 24 h are 23 h on the wall.
    pytest.param((2026, 10, 25, 10, 0), 23, id="fall-back-between"),
    # The Monday after: the change lies before the reminder, 24 h on the wall too.
    pytest.param((2026, 10, 26, 10, 0), 24, id="monday-after-fall-back"),
    # Just after the change itself (03:00 CEST became 02:00 CET): still 23 h on the wall.
    pytest.param((2026, 10, 25, 4, 0), 23, id="just-after-fall-back"),
]


@pytest.mark.parametrize(("local_start", "wall_hours"), DST_CASES)
def test_a_day_before_is_24_hours_before_across_a_change_of_the_clocks(
    any_app, expert, coaching, local_start, wall_hours
):
    start = berlin(*local_start)
    booking, _link = book(coaching, start, now=start - timedelta(days=20))
    rows = reminders_of(booking)
    day_before = start - timedelta(hours=24)
    hour_before = start - timedelta(hours=1)
    assert summary(rows) == [
        ("1440", "client", day_before, PENDING),
        ("1440", "expert", day_before, PENDING),
        ("60", "client", hour_before, PENDING),
        ("60", "expert", hour_before, PENDING),
    ]
    # In UTC exactly a day; on Berlin's wall clock what the change of the clocks makes it.
    wall = start.astimezone(BERLIN).replace(tzinfo=None) - rows[0].due_at.astimezone(
        BERLIN
    ).replace(tzinfo=None)
    assert wall == timedelta(hours=wall_hours)
    assert {m.booking_id for m in rows} == {booking.id}
    assert {m.expert_id for m in rows} == {expert.id}
    assert {m.payload["start"] for m in rows} == {start.isoformat()}
    assert [m.payload["to"] for m in rows[:2]] == ["ann@example.com", "berta@example.com"]


@pytest.mark.parametrize(
    ("booked_before", "reminded"),
    [
        (timedelta(days=3), ["1440", "1440", "60", "60"]),
        (timedelta(hours=24, minutes=1), ["1440", "1440", "60", "60"]),
        # Exactly a day ahead: the day-before reminder would be due now, already too late.
        (timedelta(hours=24), ["60", "60"]),
        (timedelta(hours=2), ["60", "60"]),
        (timedelta(minutes=60), []),
        (timedelta(minutes=30), []),
    ],
)
def test_reminders_already_past_at_booking_time_are_left_out(
    app, expert, coaching, booked_before, reminded
):
    start = berlin(2026, 6, 1, 15, 0)
    booking, _link = book(coaching, start, now=start - booked_before)
    assert [m.event for m in reminders_of(booking)] == reminded


def test_an_event_type_without_reminders_writes_none(app, expert, coaching):
    coaching.reminder_minutes = []
    db.session.commit()
    start = berlin(2026, 6, 1, 15, 0)
    booking, _link = book(coaching, start, now=start - timedelta(days=5))
    assert reminders_of(booking) == []


def test_a_reschedule_moves_them(any_app, expert, coaching):
    start, now = berlin(2026, 6, 1, 15, 0), berlin(2026, 5, 20, 12, 0)
    booking, _link = book(coaching, start, now=now)
    old = reminders_of(booking)
    new_start = berlin(2026, 6, 3, 9, 0)
    reschedule_booking(booking, new_start, now=now + timedelta(hours=1))
    assert [m.status for m in reminders_of(booking) if m.id in {o.id for o in old}] == [
        CANCELLED
    ] * 4
    pending = reminders_of(booking, PENDING)
    assert [(m.event, m.due_at) for m in pending] == [
        ("1440", new_start - timedelta(days=1)),
        ("1440", new_start - timedelta(days=1)),
        ("60", new_start - timedelta(hours=1)),
        ("60", new_start - timedelta(hours=1)),
    ]
    assert {m.payload["start"] for m in pending} == {new_start.isoformat()}


def test_a_reschedule_leaves_sent_reminders_alone_and_skips_past_ones(app, expert, coaching):
    start = berlin(2026, 6, 1, 15, 0)
    booking, _link = book(coaching, start, now=start - timedelta(days=3))
    first = reminders_of(booking)[0]
    first.status = SENT
    db.session.commit()
    # Two hours before the old start, moved to three hours after it: no day-before any more.
    now = start - timedelta(hours=2)
    reschedule_booking(booking, start + timedelta(hours=3), now=now)
    statuses = {m.id: m.status for m in reminders_of(booking)}
    assert statuses[first.id] == SENT
    assert sorted(statuses.values()).count(CANCELLED) == 3
    assert [m.event for m in reminders_of(booking, PENDING)] == ["60", "60"]


def test_a_cancellation_drops_them(any_app, expert, coaching):
    start, now = berlin(2026, 6, 1, 15, 0), berlin(2026, 5, 20, 12, 0)
    booking, _link = book(coaching, start, now=now)
    assert cancel_booking(booking, reason="ill", now=now + timedelta(hours=1))
    assert {m.status for m in reminders_of(booking)} == {CANCELLED}
    assert len(reminders_of(booking)) == 4


def test_only_the_guest_row_carries_the_manage_link_and_a_reschedule_keeps_it(
    any_app, expert, coaching
):
    start, now = berlin(2026, 6, 1, 15, 0), berlin(2026, 5, 20, 12, 0)
    booking, link = book(coaching, start, now=now)
    rows = reminders_of(booking)
    assert [m.payload.get("manage_url") for m in rows] == [link, None, link, None]
    # The expert moves it: their request has no guest link, the new reminders keep it.
    reschedule_booking(booking, start + timedelta(days=1), now=now)
    assert [m.payload.get("manage_url") for m in reminders_of(booking, PENDING)] == [
        link,
        None,
        link,
        None,
    ]


def test_a_signed_in_client_row_carries_no_token(app, expert, coaching, make_user):
    client = make_user("carl", timezone="Asia/Tokyo")
    start = berlin(2026, 6, 1, 15, 0)
    booking, _link = book(coaching, start, now=start - timedelta(days=3), client=client)
    assert all("manage_url" not in m.payload for m in reminders_of(booking))


def test_rows_for_a_new_booking_costs_no_query(app, expert, coaching):
    """It runs inside the booking's transaction, while the expert's row is locked."""
    start = berlin(2026, 6, 1, 15, 0)
    booking, _link = book(coaching, start, now=start - timedelta(days=3))
    booking = db.session.get(Booking, booking.id)
    _ = (booking.event_type.reminder_minutes, booking.expert.email)  # loaded, as in book_slot
    statements = []

    def record(conn, cursor, statement, *args):
        if not statement.startswith("BEGIN"):  # SQLite's explicit transaction start
            statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        rows = reminders.rows_for(booking, "booked", now=start - timedelta(days=3))
        assert statements == []
        reminders.rows_for(booking, "rescheduled", now=start - timedelta(days=3))
        # One UPDATE cancels the old reminders (reading the guest's link they carried), one
        # drops that link from them.
        assert [s.lstrip().split()[0].upper() for s in statements] == ["UPDATE", "UPDATE"]
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
        db.session.rollback()
    assert len(rows) == 4


def test_a_booking_that_is_not_confirmed_gets_none(app, expert, coaching):
    start = berlin(2026, 6, 1, 15, 0)
    booking, _link = book(coaching, start, now=start - timedelta(days=3))
    booking.status = Booking.CANCELLED
    assert reminders.rows_for(booking, "cancelled", now=start - timedelta(days=3)) == []
    db.session.rollback()
