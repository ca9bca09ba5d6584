"""Connected calendars: a CalDAV account or an ICS address, its calendars, and the busy times
read from them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..models import UTCDateTime, span_checks, utcnow


class CalendarConnection(db.Model):
    """One account an expert connected: a CalDAV server (with its calendars) or an ICS feed
    (one calendar, read-only)."""

    __tablename__ = "calendar_connection"

    CALDAV = "caldav"
    ICS = "ics"

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(10))
    url: Mapped[str] = mapped_column(sa.String(2048))
    username: Mapped[str] = mapped_column(sa.String(255), default="")
    # The password as a Fernet token (calendars.secrets); never shown, never logged.
    secret: Mapped[str] = mapped_column(sa.Text, default="")
    # "ok", or "error" with `error` saying what went wrong, in words.
    status: Mapped[str] = mapped_column(sa.String(10), default="ok")
    error: Mapped[str] = mapped_column(sa.Text, default="")
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the periodic sync is due next (spread, so experts do not all sync at once).
    next_sync_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # A sync in progress holds the connection until then: one sync per connection at a time,
    # whatever the number of server processes; a crashed sync's lease simply runs out.
    sync_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Syncs failed in a row: the periodic sync waits longer after each (sync.backoff).
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    calendars: Mapped[list[ConnectedCalendar]] = relationship(
        back_populates="connection",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ConnectedCalendar.id",
    )

    def __repr__(self) -> str:
        return f"<CalendarConnection {self.id} {self.kind}>"


class ConnectedCalendar(db.Model):
    """One calendar of a connection: does it block time, does it receive bookings."""

    __tablename__ = "connected_calendar"
    __table_args__ = (
        sa.UniqueConstraint("connection_id", "url", name="uq_connected_calendar_connection_url"),
        # At most one calendar of an expert receives bookings.
        sa.Index(
            "uq_connected_calendar_writes",
            "expert_id",
            unique=True,
            postgresql_where=sa.text("writes"),
            sqlite_where=sa.text("writes"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        sa.ForeignKey("calendar_connection.id", ondelete="CASCADE"), index=True
    )
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(sa.String(2048))
    name: Mapped[str] = mapped_column(sa.String(255), default="")
    blocks: Mapped[bool] = mapped_column(default=True)
    writes: Mapped[bool] = mapped_column(default=False)
    # SHA-256 of the busy times last stored: a sync that reads the same changes nothing.
    busy_digest: Mapped[str] = mapped_column(sa.String(64), default="")
    # Where reading stands, so the next sync fetches only what changed: the CalDAV sync
    # token (RFC 6578; for a feed, its ETag), a feed's Last-Modified (for CalDAV: when the
    # server said it has no sync token, see reading.NO_TOKEN) and body digest, and
    # the end and zone of the window the stored objects were read for (a wider horizon or
    # another zone means reading them all again).
    sync_token: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    sync_modified: Mapped[str] = mapped_column(sa.String(255), default="", server_default="")
    content_digest: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    read_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_zone: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    # What the stored busy times were built from besides the objects (the window, the
    # expert's own bookings), and how many events (objects) hold them.
    busy_key: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    busy_events: Mapped[int] = mapped_column(default=0, server_default="0")

    connection: Mapped[CalendarConnection] = relationship(back_populates="calendars")


class CalendarObject(db.Model):
    """One event object of a blocking calendar as last read: a CalDAV resource (its href
    and ETag), or the events of a feed that share a UID (href: the UID). `busy` holds its
    busy times in the window it was read for, "start/end" pairs in seconds since the epoch,
    space-separated, so an unchanged object is neither fetched nor parsed again."""

    __tablename__ = "calendar_object"

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(
        sa.ForeignKey("connected_calendar.id", ondelete="CASCADE"), index=True
    )
    href: Mapped[str] = mapped_column(sa.String(2048))
    etag: Mapped[str] = mapped_column(sa.String(255), default="")
    uid: Mapped[str] = mapped_column(sa.Text, default="")
    busy: Mapped[str] = mapped_column(sa.Text, default="")


class BusyTime(db.Model):
    """Time a blocking calendar is busy, stored in pieces of at most MAX_DURATION_MINUTES so
    the busy query can bound its scan as it does for bookings (slots.busy_intervals)."""

    __tablename__ = "busy_time"
    __table_args__ = (
        sa.Index("ix_busy_time_expert_start", "expert_id", "start_at"),
        *span_checks("length_in_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(
        sa.ForeignKey("connected_calendar.id", ondelete="CASCADE"), index=True
    )
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Listens for changes to the window calendars are read for (it needs the models above).
from . import resync  # noqa: E402, F401
