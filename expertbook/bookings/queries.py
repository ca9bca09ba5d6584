"""Reading bookings for My Bookings and the API."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Booking, User


def bookings_query(user: User, *, role: str, scope: str, now: datetime) -> sa.Select:
    """Bookings where `user` is the client (role "client") or the expert ("expert"),
    upcoming (not yet ended; soonest first) or past (most recent first)."""
    column = Booking.client_id if role == "client" else Booking.expert_id
    query = _in_scope(sa.select(Booking).where(column == user.id), scope, now)
    return query.options(selectinload(Booking.event_type), selectinload(Booking.expert))


def _in_scope(query: sa.Select, scope: str, now: datetime) -> sa.Select:
    """Upcoming (not yet ended: a session in progress too; soonest first) or past (most
    recent first); the id breaks ties, so pages and answers keep one order."""
    if scope == "upcoming":
        return query.where(Booking.end_at > now).order_by(Booking.start_at, Booking.id)
    return query.where(Booking.end_at <= now).order_by(Booking.start_at.desc(), Booking.id)


def bookings_of(user: User, *, role: str, scope: str, now: datetime, limit: int) -> list[Booking]:
    return list(
        db.session.scalars(bookings_query(user, role=role, scope=scope, now=now).limit(limit))
    )


def my_bookings_page(
    user: User, *, scope: str, now: datetime, page: int, per_page: int
) -> tuple[list[Booking], bool]:
    """One page of the user's bookings in either role, and whether another page follows."""
    query = sa.select(Booking).where(
        sa.or_(Booking.client_id == user.id, Booking.expert_id == user.id)
    )
    query = _in_scope(query, scope, now).options(
        selectinload(Booking.event_type), selectinload(Booking.expert), selectinload(Booking.client)
    )
    rows = list(db.session.scalars(query.offset((page - 1) * per_page).limit(per_page + 1)))
    return rows[:per_page], len(rows) > per_page
