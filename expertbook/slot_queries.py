"""The statements the slot engine runs (slots.py), built once: on a booking's path,
building a query costs more CPU than running it. What keeps an expert busy around a range
(their bookings, confirmed or pending, and their calendars' busy times; with or without the
live holds), the live holds alone, and the bookings a limit per day or week counts."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from .calendars.models import BusyTime
from .models import MAX_BUFFER_MINUTES, MAX_DURATION_MINUTES, Booking, EventType, Hold
from .scheduling.limits import COUNT_MARGIN

# How far a booking can block a slot across the gap between them: its own buffer and the
# slot's add up (a booking's buffer after, then the slot's buffer before, or the reverse).
REACH = timedelta(minutes=2 * MAX_BUFFER_MINUTES)
# The longest a booking, or a slot, lasts: the lower bound on start_at keeps the index range
# scan to the days around the range, however long the expert's history.
LONGEST = timedelta(minutes=MAX_DURATION_MINUTES)


class _overlaps(FunctionElement):
    """`[start, end)` overlaps `[after, before)`, said again for PostgreSQL's planner in the
    terms of the booking exclusion constraint's GiST index (expert, time range; migrations
    0002 and 0014), so that it finds the bookings around the range among the expert's by the index,
    not by reading all of them: a generic plan made while the table had no statistics
    (autovacuum off, or not yet run) used that index for the expert alone and filtered every
    booking of theirs, 8.4 ms at 3,700 bookings against 0.18 ms with the range (EXPLAIN
    ANALYZE). Elsewhere TRUE: the plain comparisons beside it say the same."""

    type = sa.Boolean()
    inherit_cache = True
    name = "overlaps"


@compiles(_overlaps)
def _overlaps_elsewhere(element, compiler, **kw) -> str:
    return compiler.process(sa.true(), **kw)


@compiles(_overlaps, "postgresql")
def _overlaps_postgresql(element, compiler, **kw) -> str:
    start, end, after, before = (compiler.process(c, **kw) for c in element.clauses)
    return f"tstzrange({start}, {end}, '[)') && tstzrange({after}, {before}, '[)')"


def _busy_query(*, except_booking: bool, with_holds: bool = False):
    """The union of what blocks time; `with_holds` adds the live holds (parameter `now`) and
    three columns, a hold's expiry, token hash and session key (NULL for the others)."""
    expiry = (
        [
            sa.null().cast(Hold.expires_at.type),
            sa.null().cast(Hold.token_hash.type),
            sa.null().cast(Hold.session_key.type),
        ]
        if with_holds
        else []
    )
    bookings = (
        sa.select(
            Booking.start_at,
            Booking.end_at,
            EventType.buffer_before_minutes,
            EventType.buffer_after_minutes,
            *expiry,
        )
        .join(EventType, Booking.event_type_id == EventType.id)
        .where(
            Booking.expert_id == sa.bindparam("expert_id"),
            Booking.status.in_(Booking.BLOCKING),
            Booking.start_at < sa.bindparam("starts_before"),
            Booking.start_at > sa.bindparam("starts_after"),
            Booking.end_at > sa.bindparam("ends_after"),
            _overlaps(
                Booking.start_at,
                Booking.end_at,
                sa.bindparam("ends_after"),
                sa.bindparam("starts_before"),
            ),
        )
    )
    if except_booking:
        bookings = bookings.where(Booking.id != sa.bindparam("except_booking_id"))
    # A calendar's busy time blocks like a booking without buffers of its own; its pieces
    # last at most LONGEST too (calendars.models.BusyTime), so the same bounds hold.
    calendars = sa.select(
        BusyTime.start_at, BusyTime.end_at, sa.literal(0), sa.literal(0), *expiry
    ).where(
        BusyTime.expert_id == sa.bindparam("expert_id"),
        BusyTime.start_at < sa.bindparam("starts_before"),
        BusyTime.start_at > sa.bindparam("starts_after"),
        BusyTime.end_at > sa.bindparam("ends_after"),
    )
    if not with_holds:
        return sa.union_all(bookings, calendars)
    held = _held_query(
        Hold.start_at, Hold.end_at, EventType.buffer_before_minutes,
        EventType.buffer_after_minutes, Hold.expires_at, Hold.token_hash, Hold.session_key,
    )  # fmt: skip
    return sa.union_all(bookings, calendars, held)


def _held_query(*columns):
    """Live holds (expires_at > `now`) of the expert around the range, with their type's
    buffers; the same bounds as bookings (a hold lasts its type's duration)."""
    return (
        sa.select(*columns)
        .join(EventType, Hold.event_type_id == EventType.id)
        .where(
            Hold.expert_id == sa.bindparam("expert_id"),
            Hold.expires_at > sa.bindparam("now"),
            Hold.start_at < sa.bindparam("starts_before"),
            Hold.start_at > sa.bindparam("starts_after"),
            Hold.end_at > sa.bindparam("ends_after"),
        )
    )


# Built once: on a booking's path, building a query costs more CPU than running it.
BUSY = _busy_query(except_booking=False)
BUSY_EXCEPT = _busy_query(except_booking=True)
BUSY_HELD = _busy_query(except_booking=False, with_holds=True)
BUSY_HELD_EXCEPT = _busy_query(except_booking=True, with_holds=True)
HELD = _held_query(
    Hold.id, Hold.event_type_id, Hold.start_at, Hold.end_at, EventType.buffer_before_minutes,
    EventType.buffer_after_minutes, Hold.expires_at, Hold.token_hash, Hold.session_key,
)  # fmt: skip


def _counted_query(*, except_booking: bool):
    query = sa.select(Booking.start_at).where(
        Booking.event_type_id == sa.bindparam("event_type_id"),
        Booking.status.in_(Booking.BLOCKING),
        Booking.start_at > sa.bindparam("count_after"),
        Booking.start_at < sa.bindparam("count_before"),
    )
    if except_booking:
        query = query.where(Booking.id != sa.bindparam("except_booking_id"))
    return query


COUNTED = _counted_query(except_booking=False)
COUNTED_EXCEPT = _counted_query(except_booking=True)


def busy_query():
    """The busy query of busy_intervals (parameters: `expert_id` and busy_params'): no holds."""
    return BUSY


def counted_query():
    """The query of counted_starts (parameters: `event_type_id` and count_params')."""
    return COUNTED


def count_params(lower: datetime, upper: datetime) -> dict[str, datetime]:
    """The counted query's range parameters for slots starting in [lower, upper)."""
    return {"count_after": lower - COUNT_MARGIN, "count_before": upper + COUNT_MARGIN}


def busy_params(lower: datetime, upper: datetime) -> dict[str, datetime]:
    """The busy query's range parameters for slots starting in [lower, upper)."""
    return {
        # A slot starting before `upper` ends by upper + LONGEST.
        "starts_before": upper + LONGEST + REACH,
        "starts_after": lower - REACH - LONGEST,
        "ends_after": lower - REACH,
    }
