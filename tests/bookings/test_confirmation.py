"""Confirming and declining a booking request (confirmation.py): a compare-and-swap that
changes a request exactly once, also under two callers at once on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from expertbook import confirmation
from expertbook.booking import BookingInputError, SlotUnavailable, book_slot, check_request
from expertbook.confirmation import (
    LAPSED,
    NotPending,
    NotTheExpert,
    confirm_booking,
    decline_booking,
    decline_overdue,
)
from expertbook.extensions import db
from expertbook.models import Booking, User
from expertbook.outbox.models import OutboxMessage
from tests.booking_fixtures import NOW, day_ahead
from tests.pending_bookings import pending_booking, requiring_confirmation


@pytest.fixture
def request_(any_app, sync):
    """A guest's request for a session in two days, answered within 24 hours at the latest."""
    requiring_confirmation(sync, hours=24)
    booking, _token = pending_booking(sync, day_ahead(2, 10), now=NOW)
    return booking


ANSWERS = {"goal": "Learn"}


def messages_of(booking: Booking, event: str) -> list[OutboxMessage]:
    return db.session.scalars(
        sa.select(OutboxMessage).where(
            OutboxMessage.booking_id == booking.id, OutboxMessage.event == event
        )
    ).all()


def fresh(booking: Booking) -> Booking:
    return db.session.get(Booking, booking.id, populate_existing=True)


def version_of(user: User) -> int:
    return db.session.scalar(sa.select(User.schedule_version).where(User.id == user.id))


def test_a_request_waits_blocking_its_time(request_, sync):
    assert request_.is_pending
    assert request_.confirm_by == NOW + timedelta(hours=24)
    again = check_request(request_.start_at, "Bob", "bob@example.com", answers=ANSWERS)
    with pytest.raises(SlotUnavailable):
        book_slot(sync, again, client=None, now=NOW, respond=lambda b, t: {})


def test_confirming_makes_it_confirmed_once(request_, coach):
    confirmed = confirm_booking(request_, actor=coach, now=NOW)
    assert confirmed.status == Booking.CONFIRMED
    assert confirmed.sequence == 1
    assert confirmed.confirm_by is None  # answered: nothing left for decline_overdue
    assert {m.payload["role"] for m in messages_of(request_, "confirmed")} == {"client", "expert"}
    with pytest.raises(NotPending, match="already confirmed"):
        confirm_booking(request_, actor=coach, now=NOW)
    with pytest.raises(NotPending, match="already confirmed"):
        decline_booking(request_, actor=coach, now=NOW)
    assert fresh(request_).status == Booking.CONFIRMED


def test_declining_frees_the_time_and_says_why(request_, coach, sync):
    version = version_of(coach)
    declined = decline_booking(request_, actor=coach, reason="Away that week.", now=NOW)
    assert declined.status == Booking.DECLINED
    assert declined.cancel_reason == "Away that week."
    assert declined.cancelled_at == NOW
    assert version_of(coach) == version + 1  # the slots cache offers the time again
    (mail,) = [m for m in messages_of(request_, "declined") if m.kind == OutboxMessage.MAIL]
    assert mail.payload["role"] == "client"
    with pytest.raises(NotPending, match="already declined"):
        decline_booking(request_, actor=coach, now=NOW)
    again = check_request(request_.start_at, "Bob", "bob@example.com", answers=ANSWERS)
    result = book_slot(sync, again, client=None, now=NOW, respond=lambda b, t: {})
    assert result.booking.start_at == request_.start_at


def test_only_its_expert_answers(request_, make_user):
    stranger = make_user("stranger", expert=True)
    with pytest.raises(NotTheExpert):
        confirm_booking(request_, actor=stranger, now=NOW)
    with pytest.raises(NotTheExpert):
        decline_booking(request_, actor=stranger, now=NOW)
    assert fresh(request_).is_pending


@pytest.mark.parametrize("reason", ["x" * 2001, 42, ["no"]])
def test_a_bad_reason_is_refused_before_anything_changes(request_, coach, reason):
    with pytest.raises(BookingInputError) as error:
        decline_booking(request_, actor=coach, reason=reason, now=NOW)
    assert error.value.field == "reason"
    assert fresh(request_).is_pending


def test_a_confirmed_or_cancelled_booking_is_not_pending(any_app, make_booking, coach):
    booking, _token = make_booking(day_ahead(3, 9))
    with pytest.raises(NotPending):
        confirm_booking(booking, actor=coach, now=NOW)
    with pytest.raises(NotPending):
        decline_booking(booking, actor=coach, now=NOW)


def test_the_deadline_declines_it_and_the_expert_is_then_too_late(request_, coach, monkeypatch):
    announced = []
    monkeypatch.setattr(
        "expertbook.realtime.announce_slot_released", lambda b, *a: announced.append(b.uid)
    )
    deadline = request_.confirm_by
    assert decline_overdue(deadline - timedelta(seconds=1)) == 0
    assert fresh(request_).is_pending
    with pytest.raises(NotPending, match="passed"):
        confirm_booking(request_, actor=coach, now=deadline)  # not one instant after
    assert decline_overdue(deadline) == 1
    declined = fresh(request_)
    assert declined.status == Booking.DECLINED
    assert declined.cancel_reason == LAPSED
    assert announced == [request_.uid]
    assert decline_overdue(deadline + timedelta(hours=1)) == 0  # once


def test_without_a_deadline_it_lapses_at_its_start(any_app, sync):
    requiring_confirmation(sync, hours=None)
    booking, _token = pending_booking(sync, day_ahead(2, 10), now=NOW)
    assert booking.confirm_by == booking.start_at
    assert decline_overdue(booking.start_at - timedelta(minutes=1)) == 0
    assert decline_overdue(booking.start_at) == 1


def test_the_overdue_pass_skips_one_the_expert_answered_meanwhile(request_, coach, monkeypatch):
    monkeypatch.setattr("expertbook.realtime.announce_slot_released", lambda *a: None)
    real = confirmation.decline_booking

    def expert_first(booking, **kwargs):
        confirm_booking(booking, actor=coach, now=NOW)  # the expert's click, just before
        return real(booking, **kwargs)

    monkeypatch.setattr(confirmation, "decline_booking", expert_first)
    assert decline_overdue(request_.confirm_by) == 0
    assert fresh(request_).status == Booking.CONFIRMED


# --- Two callers at once (PostgreSQL, real row locks) ---------------------------------------


def race(app, *calls) -> list[str]:
    """Run each call (booking -> None) in its own thread, app context and session, all
    released at once; what each came to: "ok", or the exception's class name."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = [""] * len(calls)

    def run(index, call):
        with app.app_context():
            barrier.wait()
            try:
                call()
                outcomes[index] = "ok"
            except Exception as error:  # noqa: BLE001 - the outcome is what is compared
                outcomes[index] = type(error).__name__
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.fixture
def pg_request(pg_app, sync, monkeypatch):
    monkeypatch.setattr("expertbook.realtime.announce_slot_released", lambda *a: None)
    requiring_confirmation(sync, hours=24)
    booking, _token = pending_booking(sync, day_ahead(2, 10), now=NOW)
    db.session.commit()
    return booking


def answer(booking_id: int, how: str, expert_id: int, now=NOW):
    def call():
        booking = db.session.get(Booking, booking_id)
        expert = db.session.get(User, expert_id)
        if how == "confirm":
            confirm_booking(booking, actor=expert, now=now)
        else:
            decline_booking(booking, actor=expert, reason="No.", now=now)

    return call


def count_messages(booking_id: int, event: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.booking_id == booking_id, OutboxMessage.event == event)
    )


@pytest.mark.parametrize("second", ["confirm", "decline"])
def test_a_double_click_changes_it_exactly_once(pg_app, pg_request, coach, second):
    ids = (pg_request.id, "confirm", coach.id), (pg_request.id, second, coach.id)
    outcomes = race(pg_app, *(answer(*args) for args in ids))
    assert sorted(outcomes) == ["NotPending", "ok"]
    booking = fresh(pg_request)
    assert booking.status in (Booking.CONFIRMED, Booking.DECLINED)
    assert booking.sequence == 1
    changes = {e: count_messages(booking.id, e) for e in ("confirmed", "declined")}
    won = "confirmed" if booking.is_confirmed else "declined"
    assert changes[won] > 0 and sum(changes.values()) == changes[won]


def test_the_expert_and_the_deadline_at_once_change_it_exactly_once(pg_app, pg_request, coach):
    deadline = pg_request.confirm_by
    just_before = deadline - timedelta(microseconds=1)
    declined: list[int] = []
    outcomes = race(
        pg_app,
        answer(pg_request.id, "confirm", coach.id, now=just_before),
        lambda: declined.append(decline_overdue(deadline)),
    )
    booking = fresh(pg_request)
    assert "NotPending" not in outcomes or booking.status == Booking.DECLINED
    if booking.is_confirmed:
        assert declined == [0]
    else:
        assert booking.status == Booking.DECLINED and declined == [1]
        assert outcomes[0] == "NotPending"
    assert booking.sequence == 1
