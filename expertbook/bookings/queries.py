"""Reading bookings for My Bookings, the dashboard, the calendar feed and the API.

Every listing is keyset-paged on (start_at, id) and walks an index on (expert_id, start_at,
id) or (client_id, start_at, id) from "now", so its cost does not grow with the history:
upcoming is soonest first, past latest first. A booking lasts at most MAX_DURATION_MINUTES
(a CHECK holds it), so "not yet ended" is also "started less than that long ago", a bound
the index can use.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import MAX_DURATION_MINUTES, Booking, User, UTCDateTime

ROLES = ("client", "expert")
SCOPES = ("upcoming", "past")
LONGEST = timedelta(minutes=MAX_DURATION_MINUTES)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Position:
    """A booking's place in a listing: the keyset a page starts after."""

    start_at: datetime
    id: int

    @classmethod
    def of(cls, booking: Booking) -> Position:
        return cls(booking.start_at, booking.id)


@dataclass(frozen=True)
class Page:
    """One page of a listing, in display order; `more` says whether rows follow it in the
    direction it was read."""

    bookings: list[Booking]
    more: bool


def in_scope(query: sa.Select, scope: str, now: datetime) -> sa.Select:
    """Upcoming (not yet ended: a session in progress too) or past bookings, with the start
    bound an index on (..., start_at) can seek to."""
    if scope == "upcoming":
        return query.where(Booking.start_at > now - LONGEST, Booking.end_at > now)
    return query.where(Booking.start_at < now, Booking.end_at <= now)


def booking_page(
    user: User,
    *,
    roles: tuple[str, ...],
    scope: str,
    now: datetime,
    limit: int,
    after: Position | None = None,
    backwards: bool = False,
    blocking_only: bool = False,
) -> Page:
    """Up to `limit` bookings where `user` has one of `roles`, in `scope`, following `after`
    (or, `backwards`, the ones just before it, still in display order); `blocking_only`:
    only those that hold their time (confirmed, or waiting for the expert's confirmation).

    Each role is its own index walk of at most limit + 1 rows, merged here: an OR of the two
    columns would make the database sort every booking the user ever had.
    """
    ascending = (scope == "upcoming") != backwards
    branches = []
    for role in roles:
        column = Booking.client_id if role == "client" else Booking.expert_id
        query = in_scope(sa.select(Booking).where(column == user.id), scope, now)
        if role == "client" and "expert" in roles:
            query = query.where(Booking.expert_id != user.id)  # listed once, as the expert
        if blocking_only:
            query = query.where(Booking.status.in_(Booking.BLOCKING))
        branches.append(_walk(query, after, ascending, limit + 1))
    rows = list(heapq.merge(*branches, key=_sort_key, reverse=not ascending))[: limit + 1]
    bookings = rows[:limit]
    if backwards:
        bookings.reverse()
    return Page(bookings, more=len(rows) > limit)


def _walk(query: sa.Select, after: Position | None, ascending: bool, limit: int) -> list[Booking]:
    key = sa.tuple_(Booking.start_at, Booking.id)
    if after is not None:
        bound = sa.tuple_(sa.literal(after.start_at, UTCDateTime()), sa.literal(after.id))
        query = query.where(key > bound if ascending else key < bound)
    order = (Booking.start_at, Booking.id)
    if not ascending:
        order = tuple(column.desc() for column in order)
    query = (
        query.order_by(*order)
        .limit(limit)
        .options(
            selectinload(Booking.event_type),
            selectinload(Booking.expert),
            selectinload(Booking.client),
        )
    )
    return list(db.session.scalars(query))


def _sort_key(booking: Booking) -> tuple[datetime, int]:
    return booking.start_at, booking.id


def upcoming_of_expert(
    expert: User, *, now: datetime, limit: int, blocking_only: bool = False
) -> list[Booking]:
    """The expert's next bookings, soonest first (the dashboard, the calendar feed)."""
    return booking_page(
        expert,
        roles=("expert",),
        scope="upcoming",
        now=now,
        limit=limit,
        blocking_only=blocking_only,
    ).bookings


def requests_of_expert(expert: User, *, now: datetime, limit: int) -> list[Booking]:
    """The requests waiting for the expert's answer, soonest first: a walk of the index on
    (expert_id, status, start_at). A request is declined by its start at the latest, so
    only those not yet started can still be answered."""
    query = (
        sa.select(Booking)
        .where(
            Booking.expert_id == expert.id,
            Booking.status == Booking.PENDING,
            Booking.start_at > now,
        )
        .order_by(Booking.start_at, Booking.id)
        .limit(limit)
        .options(selectinload(Booking.event_type), selectinload(Booking.client))
    )
    return list(db.session.scalars(query))


class BadCursor(ValueError):
    """A cursor that was not made here, or was made for another listing."""


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="expertbook.bookings.cursor")


def make_cursor(
    roles: tuple[str, ...], scope: str, position: Position, backwards: bool = False
) -> str:
    """An opaque, signed cursor: where the next page starts, for this listing only."""
    micros = (position.start_at - EPOCH) // timedelta(microseconds=1)
    marks = "".join(role[0] for role in roles)
    return _serializer().dumps([marks, scope[0], micros, position.id, int(backwards)])


def read_cursor(cursor: str, roles: tuple[str, ...], scope: str) -> tuple[Position, bool]:
    """(position, backwards) from a cursor of `make_cursor` for the same roles and scope.

    Raises:
        BadCursor: the signature does not match, or it belongs to another listing.
    """
    try:
        marks, scope_mark, micros, booking_id, backwards = _serializer().loads(cursor)
    except (BadSignature, ValueError, TypeError):
        raise BadCursor("This cursor is not valid; start again without it.") from None
    if marks != "".join(role[0] for role in roles) or scope_mark != scope[0]:
        raise BadCursor("This cursor belongs to another role or scope.")
    return Position(EPOCH + timedelta(microseconds=micros), booking_id), bool(backwards)
