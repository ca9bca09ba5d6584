"""The checks a booking and a hold share, and the locked read they run on: both lock the
expert (bumping their schedule version), read what is around the start, and refuse it
unless it is offered, within the event type's limits and held by nobody else. The
operations (booking.py, holds.py) call these in their own transactions; on PostgreSQL the
read is one round trip (booking_statements.read_locked) and returns the same `Locked`."""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .extensions import db
from .models import EventType, Hold, IdempotencyKey, User
from .scheduling import Availability, Interval, limit_reached
from .slots import (
    LiveHold,
    busy_intervals,
    count_params,
    counted_starts,
    has_limits,
    holds_blocking,
    is_bookable,
    live_holds,
)


class SlotUnavailable(Exception):
    """The requested start is taken, held by someone else, or not offered."""


class UnknownEventType(SlotUnavailable):
    """No such event type, or it is not offered (inactive): nothing to book."""


class LimitReached(SlotUnavailable):
    """The expert's day or week is full for this event type (max_per_day, max_per_week)."""


def retry_after(holds: list[LiveHold] | list[Hold], now: datetime) -> int:
    """Whole seconds until the last of `holds` expires (at least 1)."""
    latest = max(hold.expires_at for hold in holds)
    return max(1, math.ceil((latest - now).total_seconds()))


HELD_MESSAGE = "Someone else is booking this time right now."


class SlotHeld(SlotUnavailable):
    """Someone else's live hold blocks the start (expertbook/holds.py); it may free up in
    `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Holder:
    """Who is acting on holds: the SHA-256 of a hold token and/or of the browser
    session's hold key. A hold belongs to the holder when either matches (non-empty)."""

    token_hash: str | None = None
    session_key: str | None = None

    def owns(self, hold: Hold) -> bool:
        if self.token_hash and hmac.compare_digest(hold.token_hash, self.token_hash):
            return True
        return bool(self.session_key) and hold.session_key == self.session_key


@dataclass(frozen=True)
class Locked:
    """What the locked read found (None from read_locked when the event type is unknown)."""

    expert: User
    event_type: EventType
    event_type_ids: tuple[int, ...]
    # What keeps the expert busy, each widened by its own type's buffers: at least all of
    # it that reaches the slot (PostgreSQL's read gives only that).
    busy: list[Interval]
    # (request_hash, booking_id, response) stored with the idempotency key, if any.
    earlier: tuple[str, int, dict] | None
    # Facts the outbox rows depend on (outbox.events.booking_messages' `known`).
    known: dict[str, Any]
    booking_id: int
    # Live holds (anybody's) that may block the start.
    holds: list[LiveHold] = field(default_factory=list)
    # The holder's holds of the expert, live or not: the booking ends them.
    own_holds: list[Hold] = field(default_factory=list)
    # The starts the event type's limits count ([] without limits).
    counted: list[datetime] = field(default_factory=list)
    # (start, expires_at) of others' live holds of the event type that its limits count too
    # ([] without limits): a held place is taken while its hold lasts.
    counted_holds: list[tuple[datetime, datetime]] = field(default_factory=list)
    # How to read the expert's hours in the transaction, should the slot check need them and
    # this process not have them cached at the version read (None: through the expert
    # object's session).
    load_hours: Callable[[User], Availability] | None = None


def check_free(
    event_type: EventType,
    start: datetime,
    now: datetime,
    locked: Locked,
    holder: Holder,
) -> None:
    """Refuse `start` unless it is offered, within the limits and held by nobody else, in
    that order (a time that is taken says so, not that someone holds it).

    Raises:
        SlotUnavailable, LimitReached, SlotHeld.
    """
    if not is_bookable(event_type, start, now, busy=locked.busy, load_hours=locked.load_hours):
        raise SlotUnavailable("That time is not available.")
    if has_limits(event_type) and limit_reached(
        locked.counted,
        start,
        locked.expert.timezone,
        event_type.max_per_day,
        event_type.max_per_week,
    ):
        raise LimitReached("No more bookings of this kind can be made that day or week.")
    if locked.counted_holds and limit_reached(
        locked.counted + [held for held, _ in locked.counted_holds],
        start,
        locked.expert.timezone,
        event_type.max_per_day,
        event_type.max_per_week,
    ):
        # Full only while others hold the last places: it may free up.
        latest = max(expires for _, expires in locked.counted_holds)
        raise SlotHeld(
            "Others are booking the last places of that day or week right now.",
            retry_after=max(1, math.ceil((latest - now).total_seconds())),
        )
    others = [hold for hold in locked.holds if not holder.owns(hold)]
    if blocking := holds_blocking(others, event_type, start):
        raise SlotHeld(HELD_MESSAGE, retry_after=retry_after(blocking, now))


def holder_filter(holder: Holder):
    """Matches the holder's holds (nothing for nobody)."""
    matches = []
    if holder.token_hash:
        matches.append(Hold.token_hash == holder.token_hash)
    if holder.session_key:
        matches.append(Hold.session_key == holder.session_key)
    return sa.or_(sa.false(), *matches)


def read_locked(
    event_type_id: int,
    start: datetime,
    idempotency_key: str | None,
    holder: Holder,
    now: datetime,
) -> Locked | None:
    """Lock the expert of `event_type_id` and read what booking_statements.read_locked
    reads, one question at a time (SQLite); None when there is no such event type."""
    event_type = db.session.get(EventType, event_type_id)
    if event_type is None:
        return None
    expert = lock_expert_for_booking(event_type.expert_id)
    earlier = None
    if idempotency_key:
        stored = db.session.scalar(
            sa.select(IdempotencyKey).where(
                IdempotencyKey.event_type_id == event_type_id,
                IdempotencyKey.key == idempotency_key,
            )
        )
        if stored is not None:
            earlier = (stored.request_hash, stored.booking_id, stored.response)
    # All of the expert's event types in one query, fresh: the one booked, and the rooms.
    event_types = db.session.scalars(EVENT_TYPES_OF, {"expert_id": expert.id}).all()
    event_type = next(e for e in event_types if e.id == event_type_id)
    upper = start + timedelta(minutes=1)
    busy = busy_intervals(expert.id, start, upper)
    counted = []
    held = []
    if has_limits(event_type):
        counted = counted_starts(event_type_id, start, upper)
        held = counted_holds(event_type_id, start, upper, holder, now)
    own_holds = []
    if holder.token_hash or holder.session_key:
        rows = db.session.execute(
            sa.select(Hold.__table__).where(Hold.expert_id == expert.id, holder_filter(holder))
        )
        # Plain objects, not the session's: the rows are deleted with the booking.
        own_holds = [Hold(**row._mapping) for row in rows]
    return Locked(
        expert=expert,
        event_type=event_type,
        event_type_ids=tuple(e.id for e in event_types),
        busy=busy,
        earlier=earlier,
        known={},
        booking_id=0,
        holds=live_holds(expert.id, start, upper, now),
        own_holds=list(own_holds),
        counted=counted,
        counted_holds=held,
    )


def counted_holds(
    event_type_id: int, lower: datetime, upper: datetime, holder: Holder, now: datetime
) -> list[tuple[datetime, datetime]]:
    """(start, expires_at) of the live holds of the event type, but the holder's, that its
    limits count with the bookings of counted_starts(lower, upper)."""
    params = count_params(lower, upper)
    rows = db.session.execute(
        sa.select(Hold.start_at, Hold.expires_at).where(
            Hold.event_type_id == event_type_id,
            Hold.expires_at > now,
            Hold.start_at >= params["count_after"],
            Hold.start_at < params["count_before"],
            sa.not_(holder_filter(holder)),
        )
    )
    return [(start, expires) for start, expires in rows]


def lock_expert(expert_id: int) -> User:
    """Lock the expert's row for the rest of the transaction, and load it fresh: one round
    trip for the lock and the expert whose hours the slot check reads.

    FOR NO KEY UPDATE (key_share): it serializes bookings of this expert but does not
    conflict with the key-share lock that inserting a booking takes on its client's row, so
    two experts booking each other at once cannot deadlock."""
    query = sa.select(User).where(User.id == expert_id).with_for_update(key_share=True)
    return db.session.execute(query.execution_options(populate_existing=True)).scalar_one()


def lock_expert_for_booking(expert_id: int) -> User:
    """lock_expert, and bump the expert's schedule version (a booking changes what the
    expert offers): one UPDATE takes the same FOR NO KEY UPDATE row lock, and with RETURNING
    also loads the expert, in one round trip. A failed booking rolls the bump back (a
    replayed one keeps it: one needless miss of the slots cache)."""
    params = {"expert_id": expert_id}
    if not db.session.get_bind().dialect.update_returning:  # SQLite before 3.35
        db.session.execute(BUMP_SCHEDULE_VERSION, params)
        return db.session.get(User, expert_id, populate_existing=True)
    return db.session.execute(BUMP_RETURNING, params).scalar_one()


# The statements of a booking's transaction are built once: building one and computing its
# cache key cost more CPU than running it.
BUMP_SCHEDULE_VERSION = (
    sa.update(User)
    .where(User.id == sa.bindparam("expert_id"))
    .values(schedule_version=User.schedule_version + 1)
    .execution_options(synchronize_session=False)
)
BUMP_RETURNING = BUMP_SCHEDULE_VERSION.returning(User).execution_options(populate_existing=True)
# Every event type of the expert, fresh: the one booked, and the rooms to tell.
EVENT_TYPES_OF = (
    sa.select(EventType)
    .where(EventType.expert_id == sa.bindparam("expert_id"))
    .execution_options(populate_existing=True)
)
