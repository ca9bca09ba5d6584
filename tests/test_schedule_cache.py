"""Cached slot answers: every change to what an expert offers shows in the next answer."""

from datetime import UTC, datetime, timedelta

import pytest

from expertbook.availability import set_availability
from expertbook.booking import SlotUnavailable, cancel_booking
from expertbook.event_types import DELETE, remove_event_type
from expertbook.extensions import db
from expertbook.schedule_cache import SLOTS_TTL, AnswerCache, CachedSlots
from tests.booking_fixtures import NOW, day_ahead

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def cached(starts, notice=60, horizon_days=1) -> CachedSlots:
    return CachedSlots(
        computed_at=T0,
        notice=timedelta(minutes=notice),
        horizon=timedelta(days=horizon_days),
        starts=starts,
        fragments=[f'"{s:%d %H:%M}"' for s in starts],
    )


@pytest.mark.parametrize(
    "later, expected",
    [
        (timedelta(0), '["02 10:00","02 10:30","03 08:30"]'),
        (timedelta(minutes=1), '["02 10:30","03 08:30","03 09:00"]'),  # 10:00 is now too soon
        (timedelta(minutes=30), '["02 10:30","03 08:30","03 09:00"]'),
        (timedelta(minutes=31), '["03 08:30","03 09:00"]'),
    ],
)
def test_a_cached_answer_is_trimmed_to_now_exactly(later, expected):
    starts = [T0 + timedelta(minutes=m) for m in (60, 90)]
    starts += [T0 + timedelta(days=1, minutes=m) for m in (-30, 0)]
    answer = cached(starts)
    assert answer.json_for(T0 + later, "[", "]") == expected


def test_a_cached_answer_expires():
    answer = cached([])
    assert answer.fresh(T0) and answer.fresh(T0 + SLOTS_TTL - timedelta(seconds=1))
    assert not answer.fresh(T0 + SLOTS_TTL) and not answer.fresh(T0 - timedelta(seconds=1))


def test_answer_cache_is_a_bounded_lru():
    cache = AnswerCache(size=2)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"  # a is now the most recent
    cache.put("c", b"3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", None, b"3")


def test_answer_cache_keeps_to_its_byte_budget():
    cache = AnswerCache(size=100, max_bytes=1000, max_item=400)
    for i in range(10):
        cache.put(i, b"x" * 300)
    assert cache.bytes <= 1000 and cache.get(9) == b"x" * 300 and cache.get(0) is None
    cache.put("huge", b"x" * 401)
    assert cache.get("huge") is None


def starts(client, event_type, day) -> list[str]:
    day = day.date().isoformat()
    answer = client.get(f"/api/v1/event-types/{event_type.id}/slots?from={day}&to={day}&tz=UTC")
    assert answer.status_code == 200
    return [slot["start"] for slot in answer.json["slots"]]


def iso(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_booking_and_cancelling_change_the_next_answer(client, sync, make_booking):
    day = day_ahead(2, 10)
    assert iso(day) in starts(client, sync, day)
    booking, _ = make_booking(day)
    assert iso(day) not in starts(client, sync, day)
    cancel_booking(booking, now=NOW)
    assert iso(day) in starts(client, sync, day)


def test_hours_zone_and_other_event_types_change_the_next_answer(
    client, coach, sync, make_event_type, make_booking
):
    day = day_ahead(2, 10)
    before = starts(client, sync, day)
    set_availability(coach, "UTC", {d: [(9 * 60, 10 * 60)] for d in range(7)})
    db.session.commit()
    assert starts(client, sync, day) == [iso(day_ahead(2, 9)), iso(day_ahead(2, 9, 30))]
    coach.timezone = "Asia/Kolkata"  # the same hours, now read in Kolkata
    db.session.commit()
    assert iso(day_ahead(2, 3, 30)) in starts(client, sync, day)
    coach.timezone = "UTC"
    set_availability(coach, "UTC", {d: [(0, 1440)] for d in range(7)})
    db.session.commit()
    assert starts(client, sync, day) == before
    # A booking of another event type whose buffer grows blocks more of this one.
    other = make_event_type(coach, slug="other", duration_minutes=30)
    from expertbook.booking import book_slot, check_request

    book_slot(other, check_request(day, "B", "b@example.com"), client=None, now=NOW,
              respond=lambda b, t: {})  # fmt: skip
    blocked = starts(client, sync, day)
    assert iso(day + timedelta(minutes=30)) in blocked
    other.buffer_after_minutes = 30
    db.session.commit()
    assert iso(day + timedelta(minutes=30)) not in starts(client, sync, day)


def test_hours_version_moves_with_the_hours_only(app, coach, sync, make_booking):
    seen = []

    def moved() -> bool:
        db.session.refresh(coach)
        seen.append(coach.hours_version)
        return len(seen) == 1 or seen[-1] > seen[-2]

    moved()
    make_booking(day_ahead(2, 10))
    assert not moved()
    set_availability(coach, "UTC", {d: [(9 * 60, 17 * 60)] for d in range(7)})
    db.session.commit()
    assert moved()
    set_availability(coach, "UTC", {d: [(9 * 60, 17 * 60)] for d in range(7)},
                     {day_ahead(3, 0).date(): []})  # fmt: skip
    db.session.commit()
    assert moved()
    coach.timezone = "Europe/Paris"
    db.session.commit()
    assert moved()
    sync.duration_minutes = 45  # an event type is not the hours
    db.session.commit()
    assert not moved()


def test_a_booking_reads_hours_changed_since_the_last_one(app, coach, sync, make_booking):
    make_booking(day_ahead(2, 10))  # the round-the-clock hours are now cached
    set_availability(coach, "UTC", {d: [(9 * 60, 11 * 60)] for d in range(7)})
    db.session.commit()
    with pytest.raises(SlotUnavailable):
        make_booking(day_ahead(2, 12))
    make_booking(day_ahead(2, 9))
    set_availability(coach, "UTC", {d: [(9 * 60, 11 * 60)] for d in range(7)},
                     {day_ahead(2, 0).date(): []})  # fmt: skip
    db.session.commit()
    with pytest.raises(SlotUnavailable):  # the override closes that day
        make_booking(day_ahead(2, 10, 30))


def test_a_reused_event_type_id_never_serves_another_experts_answer(
    client, coach, sync, make_user, make_event_type
):
    day = day_ahead(2, 10)
    assert len(starts(client, sync, day)) == 48  # cached under sync's id and coach's version
    db.session.refresh(coach)
    version, sync_id = coach.schedule_version, sync.id
    assert remove_event_type(sync, now=NOW) == DELETE  # never booked: the row goes
    other = make_user("other", expert=True)
    set_availability(other, "UTC", {d: [(9 * 60, 10 * 60)] for d in range(7)})
    db.session.commit()
    reused = make_event_type(other, slug="sync", duration_minutes=30)
    assert reused.id == sync_id  # SQLite gives the deleted row's id again
    other.schedule_version = version  # the worst case: the same version as the cached answer
    db.session.commit()
    assert starts(client, reused, day) == [iso(day_ahead(2, 9)), iso(day_ahead(2, 9, 30))]
