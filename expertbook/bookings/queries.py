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
    query = sa.select(Booking).where(column == user.id)
    if scope == "upcoming":
        query = query.where(Booking.end_at > now).order_by(Booking.start_at)
    else:
        query = query.where(Booking.end_at <= now).order_by(Booking.start_at.desc())
    return query.options(selectinload(Booking.event_type), selectinload(Booking.expert))


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
    if scope == "upcoming":
        query = query.where(Booking.end_at > now).order_by(Booking.start_at, Booking.id)
    else:
        query = query.where(Booking.end_at <= now).order_by(Booking.start_at.desc(), Booking.id)
    query = query.options(
        selectinload(Booking.event_type), selectinload(Booking.expert), selectinload(Booking.client)
    )
    rows = list(db.session.scalars(query.offset((page - 1) * per_page).limit(per_page + 1)))
    return rows[:per_page], len(rows) > per_page
