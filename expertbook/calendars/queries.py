"""What the calendar pages and the API read: an expert's connections and their busy times."""

from __future__ import annotations

import sqlalchemy as sa

from ..extensions import db
from .models import CalendarConnection, ConnectedCalendar


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
    """How many events (calendar objects; a feed's events by UID) of the connection's
    blocking calendars hold busy time in the window kept, as the last sync counted them."""
    return db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(ConnectedCalendar.busy_events), 0)).where(
            ConnectedCalendar.connection_id == connection_id, ConnectedCalendar.blocks.is_(True)
        )
    )
