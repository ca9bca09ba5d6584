"""book_slot's rules of issue 18 on both databases: pending requests, limits per day and week
in the expert's zone, live holds weighed by holder, and answers to the event type's questions
(checked in the booking's transaction); slots_for and the slots cache with holds and limits."""

import secrets
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from expertbook.availability import set_availability
from expertbook.booking import (
    BookingInputError,
    BookingStateError,
    LimitReached,
    SlotHeld,
    SlotUnavailable,
    book_slot,
    cancel_booking,
    check_request,
    reschedule_booking,
)
from expertbook.extensions import db
from expertbook.holds import Holder, place_hold
from expertbook.models import Booking, Hold, hash_token
from expertbook.schedule_cache import CachedSlots
from expertbook.slots import offer, slots_for

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def next_monday(hour: int, minute: int = 0, weeks: int = 1) -> datetime:
    """A Monday 7+ days ahead (7 * `weeks`), at hour:minute UTC."""
    days = 7 * weeks + (7 - NOW.weekday()) % 7
    return (NOW + timedelta(days=days)).replace(hour=hour, minute=minute)


@pytest.fixture
def expert(make_user):
    user = make_user("coach", expert=True)
    set_availability(user, "UTC", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    return user


def respond(booking, token):
    return {"uid": booking.uid, "token": token}


def book(event_type, start, *, holder=None, answers=None, email="ann@example.com", now=NOW):
    request = check_request(start, "Ann", email, answers=answers)
    return book_slot(event_type, request, client=None, now=now, respond=respond, holder=holder)


def hold(event_type, start, *, expires_in=timedelta(minutes=5), session_key="", now=NOW):
    """A committed hold of `start`; returns (hold, its token)."""
    token = secrets.token_urlsafe(16)
    row = Hold(
        id=secrets.token_hex(16),
        expert_id=event_type.expert_id,
        event_type_id=event_type.id,
        start_at=start,
        end_at=start + timedelta(minutes=event_type.duration_minutes),
        expires_at=now + expires_in,
        token_hash=hash_token(token),
        session_key=session_key,
        address="192.0.2.1",
        created_at=now,
    )
    db.session.add(row)
    db.session.commit()
    return row, token


def hold_ids() -> set[str]:
    return set(db.session.scalars(sa.select(Hold.id)))


# ------------------------------------------------------------------ pending requests


def test_a_request_books_pending_until_its_start(any_app, expert, make_event_type):
    event_type = make_event_type(expert, requires_confirmation=True)
    booking = book(event_type, next_monday(10)).booking
    db.session.expire_all()
    stored = db.session.get(Booking, booking.id)
    assert stored.status == Booking.PENDING and stored.is_pending
    assert stored.confirm_by == next_monday(10)


def test_a_request_deadline_may_come_before_the_start(any_app, expert, make_event_type):
    event_type = make_event_type(expert, requires_confirmation=True, confirm_within_hours=24)
    booking = book(event_type, next_monday(10)).booking
    assert booking.confirm_by == NOW + timedelta(hours=24)
    # A start sooner than the deadline is the deadline.
    soon = (NOW + timedelta(hours=5)).replace(minute=0)
    assert book(event_type, soon).booking.confirm_by == soon


def test_a_pending_request_blocks_its_time(any_app, expert, make_event_type):
    asked = make_event_type(expert, requires_confirmation=True, slug="asked")
    plain = make_event_type(expert, slug="plain")
    book(asked, next_monday(10))
    with pytest.raises(SlotUnavailable):
        book(plain, next_monday(10, 15), email="bob@example.com")
    assert next_monday(10) not in {s.start for s in week_slots(plain)}


def test_the_exclusion_constraint_covers_pending(pg_app, expert, make_event_type):
    event_type = make_event_type(expert, requires_confirmation=True, duration_minutes=60)
    first = book(event_type, next_monday(10)).booking

    def insert(status):
        db.session.add(
            Booking(
                uid=f"direct{status}",
                expert_id=expert.id,
                event_type_id=event_type.id,
                name="Direct",
                email="d@example.com",
                start_at=first.start_at + timedelta(minutes=30),
                end_at=first.start_at + timedelta(minutes=45),
                status=status,
                manage_token_hash="0" * 64,
            )
        )
        db.session.commit()

    for status in (Booking.CONFIRMED, Booking.PENDING):
        with pytest.raises(IntegrityError) as caught:
            insert(status)
        assert caught.value.orig.pgcode == "23P01"
        db.session.rollback()
    insert(Booking.DECLINED)  # a declined request holds nothing


def test_pending_can_be_moved_and_cancelled(any_app, expert, make_event_type):
    event_type = make_event_type(expert, requires_confirmation=True)
    booking = book(event_type, next_monday(10)).booking
    reschedule_booking(booking, next_monday(11), now=NOW)
    db.session.expire_all()
    booking = db.session.get(Booking, booking.id)
    assert (booking.status, booking.start_at) == (Booking.PENDING, next_monday(11))
    assert cancel_booking(booking, now=NOW) is True
    booking = db.session.get(Booking, booking.id)
    # Withdrawn: no deadline left for decline_overdue to walk.
    assert (booking.status, booking.confirm_by) == (Booking.CANCELLED, None)


@pytest.mark.parametrize("hours", [None, 24 * 30])
def test_a_moved_request_is_due_by_its_new_start(any_app, expert, make_event_type, hours):
    """Moved earlier, a request must be answered by its new start, not the old one (nor
    confirmed once its session is over); moved later, it is not declined at the old start."""
    event_type = make_event_type(expert, requires_confirmation=True, confirm_within_hours=hours)
    booking = book(event_type, next_monday(10, weeks=2)).booking
    assert booking.confirm_by == next_monday(10, weeks=2)
    reschedule_booking(booking, next_monday(10), now=NOW)
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).confirm_by == next_monday(10)
    reschedule_booking(booking, next_monday(10, weeks=3), now=NOW)
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).confirm_by == next_monday(10, weeks=3)


def test_a_moved_request_keeps_its_answer_within_hours(any_app, expert, make_event_type):
    event_type = make_event_type(expert, requires_confirmation=True, confirm_within_hours=2)
    booking = book(event_type, next_monday(10)).booking
    made = db.session.get(Booking, booking.id).created_at
    reschedule_booking(booking, next_monday(11), now=NOW)
    db.session.expire_all()
    # Counted from when the request was made, not from the move.
    assert db.session.get(Booking, booking.id).confirm_by == made + timedelta(hours=2)


def test_a_declined_request_is_like_a_cancelled_booking(any_app, expert, make_event_type):
    event_type = make_event_type(expert, requires_confirmation=True)
    booking = book(event_type, next_monday(10)).booking
    db.session.execute(
        sa.update(Booking).where(Booking.id == booking.id).values(status=Booking.DECLINED)
    )
    db.session.commit()
    assert cancel_booking(booking, now=NOW) is False
    with pytest.raises(BookingStateError, match="declined"):
        reschedule_booking(booking, next_monday(11), now=NOW)
    book(event_type, next_monday(10), email="bob@example.com")  # its time is free


# ------------------------------------------------------------------ limits


def week_slots(event_type, monday=None, tz="UTC"):
    monday = (monday or next_monday(0)).date()
    return slots_for(
        event_type, day_from=monday, day_to=monday + timedelta(days=6), viewer_tz=tz, now=NOW
    )


def days_offered(event_type, monday=None, tz="UTC") -> set[date]:
    return {s.start.date() for s in week_slots(event_type, monday, tz)}


def test_max_per_day_fills_the_day(any_app, expert, make_event_type):
    event_type = make_event_type(expert, max_per_day=2)
    book(event_type, next_monday(10))
    book(event_type, next_monday(10, 30), email="bob@example.com")  # back to back
    with pytest.raises(LimitReached):
        book(event_type, next_monday(14), email="cy@example.com")
    book(event_type, next_monday(10) + timedelta(days=1), email="cy@example.com")
    monday = next_monday(0).date()
    assert monday not in days_offered(event_type)
    assert monday + timedelta(days=1) in days_offered(event_type)  # one of two
    book(event_type, next_monday(12) + timedelta(days=1), email="dan@example.com")
    assert monday + timedelta(days=1) not in days_offered(event_type)
    assert monday + timedelta(days=2) in days_offered(event_type)


def test_limits_count_only_their_own_event_type(any_app, expert, make_event_type):
    limited = make_event_type(expert, max_per_day=1, slug="limited")
    other = make_event_type(expert, slug="other")
    book(other, next_monday(9))
    book(limited, next_monday(10))
    with pytest.raises(LimitReached):
        book(limited, next_monday(12), email="bob@example.com")
    book(other, next_monday(12), email="bob@example.com")


def test_cancelled_bookings_do_not_count(any_app, expert, make_event_type):
    event_type = make_event_type(expert, max_per_day=1)
    booking = book(event_type, next_monday(10)).booking
    cancel_booking(booking, now=NOW)
    book(event_type, next_monday(12), email="bob@example.com")


def test_the_day_is_the_experts(any_app, make_user, make_event_type):
    expert = make_user("berlin", expert=True, timezone="Europe/Berlin")
    set_availability(expert, "Europe/Berlin", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    event_type = make_event_type(expert, max_per_day=1)
    # 23:30 UTC on Monday is 00:30 (or 01:30) on Tuesday in Berlin.
    book(event_type, next_monday(23, 30))
    book(event_type, next_monday(12), email="bob@example.com")  # Monday in Berlin: free
    with pytest.raises(LimitReached):
        book(event_type, next_monday(12) + timedelta(days=1), email="cy@example.com")


def test_max_per_week_fills_monday_to_sunday(any_app, expert, make_event_type):
    event_type = make_event_type(expert, max_per_week=2)
    book(event_type, next_monday(10))
    book(event_type, next_monday(10) + timedelta(days=6), email="bob@example.com")  # Sunday
    with pytest.raises(LimitReached):
        book(event_type, next_monday(10) + timedelta(days=3), email="cy@example.com")
    assert days_offered(event_type) == set()
    book(event_type, next_monday(10, weeks=2), email="cy@example.com")  # the next week
    with pytest.raises(LimitReached):  # the week before is the expert's too
        reschedule_booking(
            db.session.get(Booking, book_id_on(next_monday(10, weeks=2))),
            next_monday(10) + timedelta(days=2),
            now=NOW,
        )


def book_id_on(start: datetime) -> int:
    return db.session.scalar(sa.select(Booking.id).where(Booking.start_at == start))


def test_a_week_across_a_dst_change(any_app, make_user, make_event_type):
    # London springs forward on the last Sunday of March: that Monday-to-Sunday week is
    # 167 hours. Booked: its Monday 00:30 and its Sunday 23:30 (22:30Z): the week is full.
    expert = make_user("london", expert=True, timezone="Europe/London")
    set_availability(expert, "Europe/London", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    year = NOW.year + 1
    sunday = max(date(year, 3, d) for d in range(25, 32) if date(year, 3, d).weekday() == 6)
    monday = sunday - timedelta(days=6)
    event_type = make_event_type(expert, max_per_week=2, max_days_ahead=730)
    first = datetime(monday.year, monday.month, monday.day, 0, 30, tzinfo=UTC)  # 00:30 GMT
    last = datetime(sunday.year, sunday.month, sunday.day, 22, 30, tzinfo=UTC)  # 23:30 BST
    book(event_type, first)
    book(event_type, last, email="bob@example.com")
    with pytest.raises(LimitReached):
        book(event_type, first + timedelta(days=2), email="cy@example.com")
    # 23:30Z that Sunday is 00:30 Monday in London: the next week.
    book(event_type, last + timedelta(hours=1), email="cy@example.com")
    offered = slots_for(
        event_type,
        day_from=monday,
        day_to=sunday + timedelta(days=1),
        viewer_tz="Europe/London",
        now=NOW,
    )
    assert {s.start.astimezone(UTC).date() for s in offered} <= {sunday, sunday + timedelta(1)}
    # The first slot offered is the next week's first, at 00:00 BST (23:00Z on Sunday).
    assert min(s.start for s in offered) == last + timedelta(minutes=30)


# ------------------------------------------------------------------ holds


def test_others_live_holds_take_places_of_the_day(any_app, expert, make_event_type):
    """max_per_day=1: A holds 10:00, so B can neither hold nor book 14:00 that day; A books."""
    event_type = make_event_type(expert, max_per_day=1)
    a, b = Holder(session_key="a" * 64), Holder(session_key="b" * 64)
    place_hold(
        event_type.id, next_monday(10), holder_session_key=a.session_key,
        address="192.0.2.1", now=NOW,
    )  # fmt: skip
    with pytest.raises(SlotHeld) as caught:
        place_hold(
            event_type.id, next_monday(14), holder_session_key=b.session_key,
            address="192.0.2.2", now=NOW,
        )  # fmt: skip
    assert str(caught.value) == "Others are booking the last places of that day or week right now."
    assert 290 < caught.value.retry_after <= 300
    with pytest.raises(SlotHeld):
        book(event_type, next_monday(14), holder=b)
    # Another day is free; the holder's own hold does not count against them.
    book(event_type, next_monday(14) + timedelta(days=1), holder=b)
    book(event_type, next_monday(10), holder=a, email="bob@example.com")
    with pytest.raises(LimitReached):
        book(event_type, next_monday(14), holder=b, email="cy@example.com")


def test_expired_holds_take_no_places(any_app, expert, make_event_type):
    event_type = make_event_type(expert, max_per_week=1)
    hold(event_type, next_monday(10), expires_in=timedelta(seconds=-1))
    book(event_type, next_monday(14))


def test_a_held_start_is_refused_to_others_with_retry_after(any_app, expert, make_event_type):
    event_type = make_event_type(expert, slot_interval_minutes=15)
    hold(event_type, next_monday(10), expires_in=timedelta(seconds=90, milliseconds=300))
    with pytest.raises(SlotHeld) as caught:
        book(event_type, next_monday(10))
    assert caught.value.retry_after == 91
    # Overlapping starts too; touching ones are free.
    with pytest.raises(SlotHeld):
        book(event_type, next_monday(9, 45))
    book(event_type, next_monday(10, 30))


def test_a_taken_time_says_taken_even_when_held(any_app, expert, make_event_type):
    event_type = make_event_type(expert)
    book(event_type, next_monday(10))
    hold(event_type, next_monday(10, 15))  # (an old row: holds are placed only on free time)
    with pytest.raises(SlotUnavailable) as caught:
        book(event_type, next_monday(10), email="bob@example.com")
    assert type(caught.value) is SlotUnavailable


def test_holds_block_with_both_types_buffers(any_app, expert, make_event_type):
    buffered = make_event_type(expert, slug="buffered", buffer_after_minutes=15)
    plain = make_event_type(expert, slug="plain")
    hold(buffered, next_monday(10))  # blocks to 10:45
    with pytest.raises(SlotHeld):
        book(plain, next_monday(10, 30))
    fine = make_event_type(expert, slug="fine", slot_interval_minutes=5, buffer_before_minutes=10)
    with pytest.raises(SlotHeld):  # 10:50 less its 10 minutes before reaches 10:40 < 10:45
        book(fine, next_monday(10, 50), email="b@example.com")
    book(fine, next_monday(10, 55), email="b@example.com")
    book(plain, next_monday(11, 30), email="c@example.com")


def test_the_holder_books_by_token_and_the_hold_ends(any_app, expert, make_event_type):
    event_type = make_event_type(expert)
    held, token = hold(event_type, next_monday(10))
    elsewhere, _ = hold(event_type, next_monday(14), session_key="s" * 64)
    result = book(event_type, next_monday(10), holder=Holder(token_hash=hash_token(token)))
    assert result.booking.status == Booking.CONFIRMED
    assert [h.id for h in result.released_holds] == [held.id]
    assert hold_ids() == {elsewhere.id}


def test_the_holder_books_by_session(any_app, expert, make_event_type):
    event_type = make_event_type(expert)
    key = "a" * 64
    held, _ = hold(event_type, next_monday(10), session_key=key)
    other, _ = hold(event_type, next_monday(15), session_key=key)  # an older one of theirs
    result = book(event_type, next_monday(10), holder=Holder(session_key=key))
    assert {h.id for h in result.released_holds} == {held.id, other.id}
    assert hold_ids() == set()


def test_the_holder_books_after_the_hold_just_expired(any_app, expert, make_event_type):
    event_type = make_event_type(expert)
    held, token = hold(event_type, next_monday(10), expires_in=timedelta(seconds=-5))
    result = book(event_type, next_monday(10), holder=Holder(token_hash=hash_token(token)))
    assert [h.id for h in result.released_holds] == [held.id] and hold_ids() == set()


def test_expired_holds_are_ignored(any_app, expert, make_event_type):
    event_type = make_event_type(expert)
    hold(event_type, next_monday(10), expires_in=timedelta(0))
    result = book(event_type, next_monday(10))
    assert result.released_holds == ()
    assert next_monday(11) in {s.start for s in week_slots(event_type)}


def test_another_holders_token_or_session_does_nothing(any_app, expert, make_event_type):
    event_type = make_event_type(expert)
    hold(event_type, next_monday(10), session_key="b" * 64)
    _, other_token = hold(event_type, next_monday(14))
    for holder in (
        Holder(token_hash=hash_token(other_token)),
        Holder(session_key="c" * 64),
        Holder(token_hash="", session_key=""),
        Holder(token_hash=hash_token("guess")),
    ):
        with pytest.raises(SlotHeld):
            book(event_type, next_monday(10), holder=holder)
    assert len(hold_ids()) == 2


def test_a_move_onto_a_held_time_is_refused(any_app, expert, make_event_type):
    event_type = make_event_type(expert)
    booking = book(event_type, next_monday(9)).booking
    hold(event_type, next_monday(10))
    with pytest.raises(SlotHeld):
        reschedule_booking(booking, next_monday(10), now=NOW)


def test_slots_leave_held_starts_out_until_they_expire(any_app, expert, make_event_type):
    event_type = make_event_type(expert, buffer_after_minutes=15)
    hold(event_type, next_monday(10), expires_in=timedelta(minutes=3))
    monday = next_monday(0).date()
    found = offer(event_type, day_from=monday, day_to=monday, viewer_tz="UTC", now=NOW)
    starts = {s.start for s in found.slots}
    # 10:00 is held; 9:30 (its 15 minutes after reach 10:15) and 10:30 (within the
    # hold's 15 minutes after) are blocked by it too, but only 10:00 shows held.
    assert {s.start for s in found.held} == {next_monday(10)}
    assert not starts & {next_monday(9, 30), next_monday(10), next_monday(10, 30)}
    assert next_monday(9) in starts and next_monday(11) in starts
    assert found.changes_at == NOW + timedelta(minutes=3)
    later = offer(
        event_type, day_from=monday, day_to=monday, viewer_tz="UTC", now=NOW + timedelta(minutes=3)
    )
    assert later.held == [] and next_monday(10) in {s.start for s in later.slots}


def test_a_cached_answer_ends_when_its_first_hold_expires():
    cached = CachedSlots(
        NOW, timedelta(), timedelta(days=1), [], [], changes_at=NOW + timedelta(minutes=2)
    )
    assert cached.fresh(NOW + timedelta(minutes=1))
    assert not cached.fresh(NOW + timedelta(minutes=2))
    assert CachedSlots(NOW, timedelta(), timedelta(days=1), [], []).fresh(
        NOW + timedelta(minutes=9)
    )


# ------------------------------------------------------------------ answers


QUESTIONS = [
    {"id": "topic", "label": "Topic", "kind": "text", "required": True},
    {"id": "level", "label": "Level", "kind": "choice", "required": False,
     "choices": ["new", "old"]},
    {"id": "agree", "label": "Agree", "kind": "checkbox", "required": False},
]  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        (None, "answers.topic"),
        ({}, "answers.topic"),
        ({"topic": "  "}, "answers.topic"),
        ({"topic": "x" * 501}, "answers.topic"),
        ({"topic": "Taxes", "level": "expert"}, "answers.level"),
        ({"topic": "Taxes", "unknown": "x"}, "answers.unknown"),
        ({"topic": "Taxes", "agree": "yes"}, "answers.agree"),
    ],
)
def test_answers_are_checked_against_the_questions(
    any_app, expert, make_event_type, answers, field
):
    event_type = make_event_type(expert, questions=QUESTIONS)
    with pytest.raises(BookingInputError) as caught:
        book(event_type, next_monday(10), answers=answers)
    assert caught.value.field == field
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 0


def test_answers_are_kept_cleaned(any_app, expert, make_event_type):
    event_type = make_event_type(expert, questions=QUESTIONS)
    booking = book(
        event_type, next_monday(10), answers={"topic": " Taxes ", "agree": False}
    ).booking
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).answers == {"topic": "Taxes", "agree": False}


def test_answers_must_be_an_object():
    with pytest.raises(BookingInputError) as caught:
        check_request(next_monday(10), "Ann", "ann@example.com", answers=["x"])
    assert caught.value.field == "answers"
