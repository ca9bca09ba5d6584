"""The slot engine fed from the database: one query for what keeps the expert busy in a
range, their bookings and the busy times read from their own calendars."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from .calendars.models import BusyTime
from .extensions import db
from .models import MAX_BUFFER_MINUTES, MAX_DAYS_AHEAD, MAX_DURATION_MINUTES, Booking, EventType
from .schedule_cache import cached_hours
from .scheduling import Interval, SlotRules, day_window, is_offered, offered_slots

# How far a booking can block a slot across the gap between them: its own buffer and the
# slot's add up (a booking's buffer after, then the slot's buffer before, or the reverse).
REACH = timedelta(minutes=2 * MAX_BUFFER_MINUTES)
# The longest a booking, or a slot, lasts: the lower bound on start_at keeps the index range
# scan to the days around the range, however long the expert's history.
LONGEST = timedelta(minutes=MAX_DURATION_MINUTES)
# No event type offers a time farther ahead than this.
LONGEST_HORIZON = timedelta(days=MAX_DAYS_AHEAD)


def within_any_horizon(start: datetime, now: datetime, *, past: timedelta = timedelta()) -> bool:
    """False for a start no event type can offer: more than `past` ago, or beyond the longest
    horizon. Checked before the busy query, whose margins overflow datetime at the calendar's
    ends."""
    return now - past <= start < now + LONGEST_HORIZON


def rules_of(event_type: EventType) -> SlotRules:
    return SlotRules(
        duration_minutes=event_type.duration_minutes,
        interval_minutes=event_type.slot_interval_minutes,
        buffer_before_minutes=event_type.buffer_before_minutes,
        buffer_after_minutes=event_type.buffer_after_minutes,
        min_notice_minutes=event_type.min_notice_minutes,
        max_days_ahead=event_type.max_days_ahead,
    )


def _busy_query(*, except_booking: bool):
    bookings = (
        sa.select(
            Booking.start_at,
            Booking.end_at,
            EventType.buffer_before_minutes,
            EventType.buffer_after_minutes,
        )
        .join(EventType, Booking.event_type_id == EventType.id)
        .where(
            Booking.expert_id == sa.bindparam("expert_id"),
            Booking.status == Booking.CONFIRMED,
            Booking.start_at < sa.bindparam("starts_before"),
            Booking.start_at > sa.bindparam("starts_after"),
            Booking.end_at > sa.bindparam("ends_after"),
        )
    )
    if except_booking:
        bookings = bookings.where(Booking.id != sa.bindparam("except_booking_id"))
    # A calendar's busy time blocks like a booking without buffers of its own; its pieces
    # last at most LONGEST too (calendars.models.BusyTime), so the same bounds hold.
    calendars = sa.select(BusyTime.start_at, BusyTime.end_at, sa.literal(0), sa.literal(0)).where(
        BusyTime.expert_id == sa.bindparam("expert_id"),
        BusyTime.start_at < sa.bindparam("starts_before"),
        BusyTime.start_at > sa.bindparam("starts_after"),
        BusyTime.end_at > sa.bindparam("ends_after"),
    )
    return sa.union_all(bookings, calendars)


# Built once: on a booking's path, building a query costs more CPU than running it.
_BUSY = _busy_query(except_booking=False)
_BUSY_EXCEPT = _busy_query(except_booking=True)


def busy_query():
    """The busy query of busy_intervals (parameters: `expert_id` and busy_params')."""
    return _BUSY


def busy_params(lower: datetime, upper: datetime) -> dict[str, datetime]:
    """The busy query's range parameters for slots starting in [lower, upper)."""
    return {
        # A slot starting before `upper` ends by upper + LONGEST.
        "starts_before": upper + LONGEST + REACH,
        "starts_after": lower - REACH - LONGEST,
        "ends_after": lower - REACH,
    }


def busy_intervals(
    expert_id: int, lower: datetime, upper: datetime, *, except_booking_id: int | None = None
) -> list[Interval]:
    """What can block a slot starting in [lower, upper): the expert's confirmed bookings,
    each widened by its own type's buffers, and their calendars' busy times; one query,
    whatever the range.
    `except_booking_id` leaves one booking out (the one being moved, which must not block
    its own new time)."""
    params = {"expert_id": expert_id, **busy_params(lower, upper)}
    query = _BUSY
    if except_booking_id is not None:
        query = _BUSY_EXCEPT
        params["except_booking_id"] = except_booking_id
    # Rows from the database are already aware UTC with end > start and buffers >= 0, so
    # the intervals are built directly (busy_interval's checks cost 2 ms per 1,000 rows).
    minutes = timedelta(minutes=1)
    return [
        Interval(
            start - minutes * before if before else start, end + minutes * after if after else end
        )
        for start, end, before, after in db.session.connection().execute(query, params)
    ]


def slots_for(
    event_type: EventType,
    *,
    day_from: date,
    day_to: date,
    viewer_tz: str,
    now: datetime,
    except_booking_id: int | None = None,
    extra_days_ahead: int = 0,
) -> list[Interval]:
    """The offered slots of `event_type` on the viewer's days day_from..day_to.

    `extra_days_ahead` widens the booking horizon (for a cached answer that is trimmed to
    the exact horizon each time it is served).

    Raises:
        UnknownTimeZone: `viewer_tz` is not an IANA zone.
    """
    try:
        window = day_window(day_from, day_to, viewer_tz)
    except (OverflowError, ValueError):  # the calendar's ends (or to < from): nothing offered
        return []
    horizon = timedelta(days=event_type.max_days_ahead + extra_days_ahead)
    if window.end <= now or window.start >= now + horizon:
        # Nothing can be offered; and near the calendar's ends the busy query's margins
        # would overflow datetime.
        return []
    busy = busy_intervals(
        event_type.expert_id, window.start, window.end, except_booking_id=except_booking_id
    )
    rules = rules_of(event_type)
    if extra_days_ahead:
        rules = replace(rules, max_days_ahead=rules.max_days_ahead + extra_days_ahead)
    return offered_slots(
        cached_hours(event_type.expert),
        rules,
        busy,
        now=now,
        day_from=day_from,
        day_to=day_to,
        viewer_tz=viewer_tz,
    )


def is_bookable(
    event_type: EventType,
    start: datetime,
    now: datetime,
    *,
    except_booking_id: int | None = None,
    busy: list[Interval] | None = None,
) -> bool:
    """True when `start` is an offered slot of `event_type` right now. `busy`: what keeps
    the expert busy around `start`, when the caller has read it already (at least what
    busy_intervals would give)."""
    rules = rules_of(event_type)
    notice = timedelta(minutes=rules.min_notice_minutes)
    if not now + notice <= start < now + timedelta(days=rules.max_days_ahead):
        # Not offered whatever is booked; and near the calendar's ends the busy query's
        # margins would overflow datetime.
        return False
    end = start + timedelta(minutes=event_type.duration_minutes)
    if busy is None:
        busy = busy_intervals(event_type.expert_id, start, end, except_booking_id=except_booking_id)
    return is_offered(cached_hours(event_type.expert), rules, busy, now=now, start=start)
