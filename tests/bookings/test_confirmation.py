"""Confirming and declining a booking request (confirmation.py): a compare-and-swap that
changes a request exactly once, also under two callers at once on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from expertbook import confirmation, sweeper
from expertbook.booking import BookingInputError, SlotUnavailable, book_slot, check_request
from expertbook.confirmation import (
    LAPSED,
    NotPending,
    NotTheExpert,
    confirm_booking,
    decline_booking,
    decline_overdue,
)
from expertbook.extensions import db, socketio
from expertbook.models import Booking, User
from expertbook.outbox.models import OutboxMessage
from expertbook.scheduling import iso_z
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


def test_the_deadline_declines_it_and_the_expert_is_then_too_late(request_, coach):
    deadline = request_.confirm_by
    assert decline_overdue(deadline - timedelta(seconds=1)) == []
    assert fresh(request_).is_pending
    with pytest.raises(NotPending, match="passed"):
        confirm_booking(request_, actor=coach, now=deadline)  # not one instant after
    # The declined requests come back, for the caller (the sweeper) to announce.
    assert [b.uid for b in decline_overdue(deadline)] == [request_.uid]
    declined = fresh(request_)
    assert declined.status == Booking.DECLINED
    assert declined.cancel_reason == LAPSED
    assert decline_overdue(deadline + timedelta(hours=1)) == []  # once


def test_without_a_deadline_it_lapses_at_its_start(any_app, sync):
    requiring_confirmation(sync, hours=None)
    booking, _token = pending_booking(sync, day_ahead(2, 10), now=NOW)
    assert booking.confirm_by == booking.start_at
    assert decline_overdue(booking.start_at - timedelta(minutes=1)) == []
    assert len(decline_overdue(booking.start_at)) == 1


def test_the_overdue_pass_skips_one_the_expert_answered_meanwhile(request_, coach, monkeypatch):
    real = confirmation.decline_booking

    def expert_first(booking, **kwargs):
        confirm_booking(booking, actor=coach, now=NOW)  # the expert's click, just before
        return real(booking, **kwargs)

    monkeypatch.setattr(confirmation, "decline_booking", expert_first)
    assert decline_overdue(request_.confirm_by) == []
    assert fresh(request_).status == Booking.CONFIRMED


def test_one_request_that_fails_does_not_hold_up_the_next(any_app, sync, monkeypatch, caplog):
    """The requests are walked in deadline order: one whose decline fails (here, its
    messages) is logged and left for the next pass, and the one after it is declined."""
    requiring_confirmation(sync, hours=24)
    first, _token = pending_booking(sync, day_ahead(2, 10), now=NOW)
    second, _token = pending_booking(sync, day_ahead(2, 12), now=NOW + timedelta(minutes=1))
    assert first.confirm_by < second.confirm_by
    real = confirmation.booking_changed

    def broken_for_first(booking, change, **kwargs):
        if booking.id == first.id:
            raise RuntimeError("the outbox is broken for this one")
        return real(booking, change, **kwargs)

    monkeypatch.setattr(confirmation, "booking_changed", broken_for_first)
    with caplog.at_level("ERROR", logger="expertbook.confirmation"):
        declined = decline_overdue(second.confirm_by)
    assert [b.uid for b in declined] == [second.uid]
    assert fresh(first).is_pending and fresh(second).status == Booking.DECLINED
    assert f"declining the overdue request {first.uid} failed" in caplog.text


def test_the_sweepers_pass_declines_it_and_every_open_page_sees_the_time_free(app, sync):
    """The sweeper's pass, through the real socket layer: a booking page of the expert open
    at the deadline hears slot_released for the request's time, after the commit."""
    requiring_confirmation(sync, hours=24)
    booking, _token = pending_booking(sync, day_ahead(2, 10), now=NOW)
    page = socketio.test_client(app)
    page.emit("join", {"event_type_id": sync.id})
    page.get_received()
    sweeper.sweep_once(app, booking.confirm_by - timedelta(seconds=1))
    assert [e for e in page.get_received() if e["name"] == "slot_released"] == []
    sweeper.sweep_once(app, booking.confirm_by)
    released = [e["args"][0] for e in page.get_received() if e["name"] == "slot_released"]
    assert released == [
        {"event_type_id": sync.id, "start": iso_z(booking.start_at), "end": iso_z(booking.end_at)}
    ]
    db.session.rollback()  # the pass committed in a session of its own
    assert fresh(booking).status == Booking.DECLINED
    page.disconnect()


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
def pg_request(pg_app, sync):
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
        lambda: declined.append(len(decline_overdue(deadline))),
    )
    booking = fresh(pg_request)
    assert "NotPending" not in outcomes or booking.status == Booking.DECLINED
    if booking.is_confirmed:
        assert declined == [0]
    else:
        assert booking.status == Booking.DECLINED and declined == [1]
        assert outcomes[0] == "NotPending"
    assert booking.sequence == 1
