"""The booking operation on both databases: atomicity, overlap rules, idempotency."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from expertbook.availability import set_availability
from expertbook.booking import (
    IDEMPOTENCY_TTL,
    BookingInputError,
    SlotUnavailable,
    book_slot,
    check_idempotency_key,
    check_request,
    reschedule_booking,
)
from expertbook.extensions import db
from expertbook.models import Booking, EventType, IdempotencyKey

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def next_monday(hour: int, minute: int = 0) -> datetime:
    """A Monday 7+ days ahead, at hour:minute UTC (the expert works in UTC)."""
    days = 7 + (7 - NOW.weekday()) % 7
    return (NOW + timedelta(days=days)).replace(hour=hour, minute=minute)


@pytest.fixture
def expert(make_user):
    user = make_user("coach", expert=True)
    set_availability(user, "UTC", {day: [(9 * 60, 17 * 60)] for day in range(7)})
    db.session.commit()
    return user


def respond(booking, token):
    return {"uid": booking.uid, "token": token}


def book(event_type, start, *, key=None, client=None, name="Ann", email="ann@example.com"):
    request = check_request(start, name, email)
    return book_slot(
        event_type, request, client=client, now=NOW, respond=respond, idempotency_key=key
    )


def confirmed_count() -> int:
    return db.session.scalar(
        sa.select(sa.func.count(Booking.id)).where(Booking.status == Booking.CONFIRMED)
    )


def test_book_a_free_slot(any_app, expert, make_event_type):
    event_type = make_event_type(expert, duration_minutes=30, location="google_meet")
    result = book(event_type, next_monday(10))
    booking = result.booking
    assert not result.replayed
    assert booking.status == "confirmed"
    assert booking.end_at - booking.start_at == timedelta(minutes=30)
    assert booking.video_url.startswith("https://meet.google.com/")
    assert booking.manage_token_hash != result.response["token"]
    assert confirmed_count() == 1


def test_the_same_slot_twice_is_refused(any_app, expert, make_event_type):
    event_type = make_event_type(expert)
    book(event_type, next_monday(10))
    with pytest.raises(SlotUnavailable):
        book(event_type, next_monday(10), email="bob@example.com")
    assert confirmed_count() == 1


def test_overlap_across_two_event_types_of_one_expert(any_app, expert, make_event_type):
    hour = make_event_type(expert, slug="hour", duration_minutes=60)
    quarter = make_event_type(expert, slug="quarter", duration_minutes=15)
    book(hour, next_monday(10))
    # Cal.com's exact start/end key misses this one: 10:30 inside the 10:00-11:00 booking.
    for minute in (0, 15, 30, 45):
        with pytest.raises(SlotUnavailable):
            book(quarter, next_monday(10, minute))
    book(quarter, next_monday(11))
    assert confirmed_count() == 2


def test_back_to_back_bookings_are_allowed(any_app, expert, make_event_type):
    event_type = make_event_type(expert, duration_minutes=30)
    for minute in (0, 30):
        book(event_type, next_monday(10, minute))
    book(event_type, next_monday(9, 30))
    assert confirmed_count() == 3


def test_buffers_of_both_event_types_count(any_app, expert, make_event_type):
    padded = make_event_type(expert, slug="padded", duration_minutes=30, buffer_after_minutes=30)
    plain = make_event_type(expert, slug="plain", duration_minutes=30)
    book(padded, next_monday(10))
    with pytest.raises(SlotUnavailable):  # inside the padded booking's 30-minute buffer
        book(plain, next_monday(10, 30))
    book(plain, next_monday(11))


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(lambda: next_monday(10, 10), id="off-grid"),
        pytest.param(lambda: next_monday(8), id="before-hours"),
        pytest.param(lambda: next_monday(16, 45), id="ends-after-hours"),
        pytest.param(lambda: NOW - timedelta(days=1), id="past"),
        pytest.param(lambda: NOW + timedelta(days=400), id="beyond-horizon"),
    ],
)
def test_times_not_offered_are_refused(any_app, expert, make_event_type, start):
    event_type = make_event_type(expert, duration_minutes=30)
    with pytest.raises(SlotUnavailable):
        book(event_type, start())
    assert confirmed_count() == 0


def test_inactive_event_type_is_refused(any_app, expert, make_event_type):
    event_type = make_event_type(expert, active=False)
    with pytest.raises(SlotUnavailable):
        book(event_type, next_monday(10))


def test_same_idempotency_key_replays_the_first_answer(any_app, expert, make_event_type):
    event_type = make_event_type(expert)
    first = book(event_type, next_monday(10), key="click-1")
    again = book(event_type, next_monday(10), key="click-1")
    assert again.replayed and again.response == first.response
    assert again.booking.uid == first.booking.uid
    assert confirmed_count() == 1
    # Another key for the same slot is a different request: the slot is taken.
    with pytest.raises(SlotUnavailable):
        book(event_type, next_monday(10), key="click-2")


def test_signed_in_booker_owns_the_booking(any_app, expert, make_event_type, make_user):
    client = make_user("client")
    result = book(make_event_type(expert), next_monday(10), client=client)
    assert result.booking.client_id == client.id


@pytest.mark.parametrize(
    "name, email, notes, field",
    [
        ("", "ann@example.com", "", "name"),
        ("   ", "ann@example.com", "", "name"),
        ("x" * 101, "ann@example.com", "", "name"),
        (None, "ann@example.com", "", "name"),
        ("Ann", "not-an-email", "", "email"),
        ("Ann", "", "", "email"),
        ("Ann", 42, "", "email"),
        ("Ann", "ann@example.com", "x" * 2001, "notes"),
        ("Ann", "ann@example.com", ["a list"], "notes"),
    ],
)
def test_bad_input_is_refused_before_any_transaction(name, email, notes, field):
    with pytest.raises(BookingInputError) as caught:
        check_request(next_monday(10), name, email, notes)
    assert caught.value.field == field


def test_naive_start_is_refused():
    with pytest.raises(BookingInputError):
        check_request(next_monday(10).replace(tzinfo=None), "Ann", "ann@example.com")


@pytest.mark.parametrize("key", ["x" * 256, "tab\tkey", 42])
def test_bad_idempotency_keys(key):
    with pytest.raises(BookingInputError):
        check_idempotency_key(key)


def test_exclusion_constraint_refuses_a_direct_overlapping_insert(pg_app, expert, make_event_type):
    event_type = make_event_type(expert, duration_minutes=60)
    first = book(event_type, next_monday(10)).booking

    def insert(start, status="confirmed"):
        db.session.add(
            Booking(
                uid=f"direct{start:%H%M}{status[:2]}",
                expert_id=expert.id,
                event_type_id=event_type.id,
                name="Direct",
                email="d@example.com",
                start_at=start,
                end_at=start + timedelta(minutes=15),
                status=status,
                manage_token_hash="0" * 64,
            )
        )
        db.session.commit()

    with pytest.raises(IntegrityError) as caught:
        insert(first.start_at + timedelta(minutes=30))
    assert caught.value.orig.pgcode == "23P01"
    db.session.rollback()
    insert(first.end_at)  # back-to-back is fine
    insert(first.start_at, status="cancelled")  # cancelled bookings do not block


def test_a_stuck_lock_holder_gives_503_and_writes_nothing(pg_app, expert, make_event_type):
    import psycopg2

    event_type = make_event_type(expert)
    pg_app.config["BOOKING_LOCK_TIMEOUT_MS"] = 300
    url = sa.make_url(str(db.engine.url)).set(drivername="postgresql")
    holder = psycopg2.connect(url.render_as_string(hide_password=False))
    try:
        with holder.cursor() as cursor:
            cursor.execute('SELECT id FROM "user" WHERE id = %s FOR UPDATE', (expert.id,))
        response = pg_app.test_client().post(
            f"/api/v1/event-types/{event_type.id}/bookings",
            json={"start": next_monday(10).isoformat(), "name": "A", "email": "a@example.com"},
        )
    finally:
        holder.rollback()
        holder.close()
    assert response.status_code == 503
    assert response.json["error"]["code"] == "busy" and response.headers["Retry-After"]
    assert confirmed_count() == 0


def test_booking_reads_committed_whatever_the_server_default(
    pg_app_repeatable_read, expert, make_event_type
):
    event_type = make_event_type(expert)
    start = next_monday(10)
    # The view's read starts the transaction (and, under REPEATABLE READ, its snapshot)...
    db.session.get(EventType, event_type.id, populate_existing=True)
    # ...then another process books that slot and commits, bumping the expert's row.
    insert_booking_elsewhere = sa.insert(Booking).values(
        uid="elsewhere",
        expert_id=expert.id,
        event_type_id=event_type.id,
        name="Elsewhere",
        email="e@example.com",
        start_at=start,
        end_at=start + timedelta(minutes=event_type.duration_minutes),
        status=Booking.CONFIRMED,
        manage_token_hash="0" * 64,
    )
    with db.engine.begin() as other:
        other.execute(insert_booking_elsewhere)
        other.execute(sa.text('UPDATE "user" SET schedule_version = schedule_version + 1'))
    # A clean "taken" (409), not a serialization failure (500).
    with pytest.raises(SlotUnavailable):
        book(event_type, start, email="bob@example.com")
    # The server's default stood (the connection sets its own, for its session).
    server_default = sa.text(
        "SELECT reset_val FROM pg_settings WHERE name = 'default_transaction_isolation'"
    )
    assert db.session.scalar(server_default) == "repeatable read"


def test_the_same_key_with_another_request_is_refused(any_app, expert, make_event_type):
    from expertbook.booking import IdempotencyKeyReused

    event_type = make_event_type(expert)
    book(event_type, next_monday(10), key="shared")
    with pytest.raises(IdempotencyKeyReused):  # a stranger guessing the key gets nothing
        book(event_type, next_monday(11), key="shared", email="eve@example.com")
    with pytest.raises(IdempotencyKeyReused):
        book(event_type, next_monday(10), key="shared", email="eve@example.com")
    assert confirmed_count() == 1


@pytest.mark.parametrize("name", ["\u0001\u200b", "\n\t", "   ", "\u200b"])
def test_names_without_letters_are_refused(name):
    with pytest.raises(BookingInputError):
        check_request(next_monday(10), name, "ann@example.com")


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-01:00"])
def test_starts_at_the_calendars_ends_are_refused(start):
    with pytest.raises(BookingInputError):
        check_request(datetime.fromisoformat(start), "Ann", "ann@example.com")


def test_stale_idempotency_keys_are_swept_at_most_once_a_minute(any_app, expert, make_event_type):
    event_type = make_event_type(expert)
    book(event_type, next_monday(10), key="old")  # the app's first booking sweeps (nothing)
    stale = NOW - IDEMPOTENCY_TTL - timedelta(minutes=1)
    db.session.execute(sa.update(IdempotencyKey).values(created_at=stale))
    db.session.commit()

    def booked_at(now, start, key):
        request = check_request(start, "Ann", "ann@example.com")
        book_slot(event_type, request, client=None, now=now, respond=respond, idempotency_key=key)
        return set(db.session.scalars(sa.select(IdempotencyKey.key)))

    assert booked_at(NOW + timedelta(seconds=59), next_monday(11), "a") == {"old", "a"}
    assert booked_at(NOW + timedelta(minutes=1), next_monday(12), "b") == {"a", "b"}


def test_a_long_booking_blocks_the_next_day_through_its_buffer(
    any_app, client, make_user, make_event_type
):
    expert = make_user("night", expert=True)
    set_availability(expert, "UTC", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    longest = make_event_type(
        expert, slug="retreat", duration_minutes=720, buffer_after_minutes=720
    )
    call = make_event_type(expert, slug="call", duration_minutes=30)
    noon = next_monday(12)
    book(longest, noon)  # noon to midnight, then its buffer until noon the next day
    day = (noon + timedelta(days=1)).date().isoformat()
    answer = client.get(f"/api/v1/event-types/{call.id}/slots?from={day}&to={day}&tz=UTC")
    assert answer.json["slots"][0]["start"] == f"{day}T12:00:00Z"
    with pytest.raises(SlotUnavailable):
        book(call, noon + timedelta(hours=23, minutes=30))
    book(call, noon + timedelta(days=1))


@pytest.mark.parametrize("side", ["before", "after"])
def test_two_long_buffers_add_up_across_days(any_app, client, make_user, make_event_type, side):
    """A booking's buffer and a slot's buffer, 720 minutes each, block across a whole day:
    a one-day listing must agree with a longer one, and with what can be booked."""
    expert = make_user("night", expert=True)
    set_availability(expert, "UTC", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    day = next_monday(0)
    if side == "before":  # 30 minutes at 10:00 the day before, then 12 hours of buffer...
        booked = make_event_type(expert, slug="booked", buffer_after_minutes=720)
        booking_start = day - timedelta(hours=14)
        slots = make_event_type(expert, slug="slots", buffer_before_minutes=720)
        first, last = "10:30", "23:30"  # ...and 12 hours before each slot
        blocked = day
    else:  # 30 minutes at 13:30 the day after, with 12 hours of buffer before it...
        booked = make_event_type(expert, slug="booked", buffer_before_minutes=720)
        booking_start = day + timedelta(days=1, hours=13, minutes=30)
        slots = make_event_type(expert, slug="slots", buffer_after_minutes=720)
        first, last = "00:00", "13:00"  # ...and 12 hours after each slot
        blocked = day + timedelta(hours=23, minutes=30)
    book(booked, booking_start)
    iso = day.date().isoformat()
    answer = client.get(f"/api/v1/event-types/{slots.id}/slots?from={iso}&to={iso}&tz=UTC")
    starts = [slot["start"] for slot in answer.json["slots"]]
    assert (starts[0], starts[-1]) == (f"{iso}T{first}:00Z", f"{iso}T{last}:00Z")
    with pytest.raises(SlotUnavailable):
        book(slots, blocked)
    book(slots, datetime.fromisoformat(starts[0]))


def test_booking_without_update_returning(any_app, expert, make_event_type, monkeypatch):
    """SQLite before 3.35 has no UPDATE ... RETURNING: the lock is an UPDATE, then a read."""
    event_type = make_event_type(expert)
    version = expert.schedule_version
    monkeypatch.setattr(db.engine.dialect, "update_returning", False)
    book(event_type, next_monday(10))
    with pytest.raises(SlotUnavailable):
        book(event_type, next_monday(10), email="bob@example.com")
    db.session.refresh(expert)
    assert confirmed_count() == 1 and expert.schedule_version == version + 1


def test_reschedule_reads_the_event_type_fresh(any_app, expert, make_event_type):
    event_type = make_event_type(expert, duration_minutes=30)
    # As a view would have it: the session's (book_slot's booking is in no session).
    booking = db.session.get(Booking, book(event_type, next_monday(10)).booking.id)
    assert booking.event_type.duration_minutes == 30  # loaded
    # Another process lengthens the event type meanwhile (not through this session).
    db.session.execute(sa.update(EventType.__table__).values(duration_minutes=60))
    db.session.commit()
    reschedule_booking(booking, next_monday(13), now=NOW)
    assert booking.end_at - booking.start_at == timedelta(minutes=60)


@pytest.mark.parametrize("minutes, refused", [(720, False), (721, True)])
def test_the_schema_refuses_a_booking_longer_than_any_event_type(
    any_app, expert, make_event_type, minutes, refused
):
    """The busy query's scan relies on it (SQLite: the models' CHECK; PostgreSQL: the
    migration's)."""
    from tests.booking_fixtures import insert_booking

    event_type = make_event_type(expert)
    if not refused:
        insert_booking(event_type, next_monday(0), minutes=minutes)
        return
    with pytest.raises(IntegrityError):
        insert_booking(event_type, next_monday(0), minutes=minutes)
    db.session.rollback()


def test_reschedule_needs_an_active_event_type(any_app, expert, make_event_type):
    from expertbook.booking import BookingStateError

    event_type = make_event_type(expert, duration_minutes=30)
    booking = book(event_type, next_monday(10)).booking
    event_type.active = False
    db.session.commit()
    with pytest.raises(BookingStateError, match="no longer offered"):
        reschedule_booking(booking, next_monday(13), now=NOW)
    assert db.session.get(Booking, booking.id).start_at == next_monday(10)


FAR_OFF = [
    datetime(9999, 12, 31, 23, tzinfo=UTC),
    datetime(1, 1, 1, 0, 30, tzinfo=UTC),
    NOW + timedelta(days=800),
    NOW - timedelta(days=1),
]


@pytest.mark.parametrize("start", FAR_OFF)
def test_a_start_far_off_is_unavailable_not_an_overflow(any_app, expert, make_event_type, start):
    """Refused before the locked read, whose busy query widens the start by days."""
    event_type = make_event_type(expert, max_days_ahead=730)
    with pytest.raises(SlotUnavailable):
        book(event_type, start)
    booking = book(event_type, next_monday(10)).booking
    with pytest.raises(SlotUnavailable):
        reschedule_booking(booking, start, now=NOW)
    assert confirmed_count() == 1


def test_an_expert_cannot_book_their_own_event_type(any_app, expert, make_event_type, make_user):
    from expertbook.booking import OwnEventType

    event_type = make_event_type(expert)
    with pytest.raises(OwnEventType):
        book(event_type, next_monday(10), client=expert)
    assert confirmed_count() == 0
    # Another expert may book it.
    assert book(event_type, next_monday(10), client=make_user("other", expert=True)).booking
