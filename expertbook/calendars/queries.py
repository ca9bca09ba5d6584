"""What the calendar pages and the API read: an expert's connections and their busy times."""

from __future__ import annotations

import sqlalchemy as sa

from ..extensions import db
from .models import BusyTime, CalendarConnection, ConnectedCalendar


def connections_of(expert_id: int) -> list[CalendarConnection]:
    """The expert's connections, oldest first."""
    return list(
        db.session.scalars(
            sa.select(CalendarConnection)
            .where(CalendarConnection.expert_id == expert_id)
            .order_by(CalendarConnection.id)
        )
    )


def connection_of(expert_id: int, connection_id: int) -> CalendarConnection | None:
    """The expert's connection with that id; another expert's is as unknown as a missing one."""
    connection = db.session.get(CalendarConnection, connection_id)
    return connection if connection is not None and connection.expert_id == expert_id else None


def busy_count(connection_id: int) -> int:
    """How many busy times (stored pieces) the connection's calendars hold now."""
    calendars = sa.select(ConnectedCalendar.id).where(
        ConnectedCalendar.connection_id == connection_id
    )
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(BusyTime).where(BusyTime.calendar_id.in_(calendars))
    )
