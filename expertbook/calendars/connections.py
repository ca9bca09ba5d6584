"""Calendar connections as the expert changes them: connect (with a first sync), choose
which calendars block time and which one receives bookings, remove.

They take the expert and `now` as arguments and raise FieldError for bad input; callers
announce `slots_changed` after the commit when told that busy times changed.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..database import booking_transaction
from ..errors import FieldError
from ..extensions import db
from ..models import User
from . import remote, secrets, store
from .feeds import FeedError
from .models import BusyTime, CalendarConnection, CalendarObject, ConnectedCalendar
from .reading import MAX_URL, read_remote
from .sync import allow_private, apply, bump_schedule, lock_expert, next_sync, own_uids, window

MAX_USERNAME = 255
MAX_PASSWORD = 1024
MAX_CONNECTIONS = 10


def check_connection_input(kind, url, username="", password="") -> tuple[str, str, str, str]:
    """Validate what an expert typed to connect a calendar. Raises FieldError."""
    if kind not in (CalendarConnection.CALDAV, CalendarConnection.ICS):
        raise FieldError("kind", 'Choose "caldav" or "ics".')
    if not isinstance(url, str) or not url.strip():
        raise FieldError("url", "Please give the calendar's address.")
    if len(url) > MAX_URL:
        raise FieldError("url", f"At most {MAX_URL} characters.")
    if kind == CalendarConnection.ICS:
        username = password = ""
    else:
        if not isinstance(username, str) or not username.strip():
            raise FieldError("username", "Please give the user name.")
        if len(username) > MAX_USERNAME or not username.isprintable():
            raise FieldError("username", f"At most {MAX_USERNAME} printable characters.")
        if not isinstance(password, str) or not password:
            raise FieldError("password", "Please give the (app) password.")
        if len(password) > MAX_PASSWORD or "\x00" in password:
            raise FieldError("password", f"At most {MAX_PASSWORD} characters.")
        username = username.strip()
    try:
        url = remote.check_url(url.strip(), allow_private=allow_private())
    except remote.RemoteError as error:
        raise FieldError("url", error.message) from None
    return kind, url, username, password


def _count(expert_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(CalendarConnection)
        .where(CalendarConnection.expert_id == expert_id)
    )


def _too_many() -> FieldError:
    return FieldError("url", f"At most {MAX_CONNECTIONS} calendar connections.")


def connect_calendar(
    expert: User, kind, url, username="", password="", *, now
) -> CalendarConnection:
    """Connect a CalDAV account or an ICS feed, read it once, and store it with its busy
    times; nothing is stored when it cannot be read. Raises FieldError (the reason in words)."""
    kind, url, username, password = check_connection_input(kind, url, username, password)
    if _count(expert.id) >= MAX_CONNECTIONS:  # an early answer, before the network calls
        raise _too_many()
    span = window(expert.id, now)
    own = own_uids(expert.id, *span)
    db.session.commit()  # no transaction stays open across the network calls
    try:
        fetched = read_remote(
            kind,
            url,
            username,
            password,
            start=span[0],
            end=span[1],
            zone=expert.timezone,
            allow_private=allow_private(),
            now=now,
        )
    except (remote.RemoteError, FeedError) as error:
        raise FieldError("url", error.message) from None
    with booking_transaction():
        # Counted again under the expert's lock: two connects at once cannot both pass.
        lock_expert(expert.id)
        if _count(expert.id) >= MAX_CONNECTIONS:
            raise _too_many()
        bump_schedule(expert.id)
        connection = CalendarConnection(
            expert_id=expert.id,
            kind=kind,
            url=url,
            username=username,
            secret=secrets.encrypt(password),
            next_sync_at=next_sync(now),
        )
        db.session.add(connection)
        db.session.flush()
        apply(connection, fetched, now, span, own)
    return connection


def update_calendars(connection: CalendarConnection, changes: list[dict]) -> tuple[bool, bool]:
    """Set `blocks` and `writes` of the connection's calendars (at most one of the expert's
    calendars writes: choosing one clears the others).

    Returns:
        Whether busy times changed (a calendar stopped blocking), and whether a calendar
        started blocking (its busy times are still to be read: sync_now).

    Raises:
        FieldError: an unknown calendar, a value that is not a boolean, two that write.
    """
    by_id = {calendar.id: calendar for calendar in connection.calendars}
    checked = []
    for index, change in enumerate(changes):
        field = f"calendars.{index}"
        if not isinstance(change, dict):
            raise FieldError(field, 'Each entry is {"id", "blocks"?, "writes"?}.')
        calendar_id = change.get("id")
        known = isinstance(calendar_id, int) and not isinstance(calendar_id, bool)
        calendar = by_id.get(calendar_id) if known else None
        if calendar is None:
            raise FieldError(f"{field}.id", "No such calendar in this connection.")
        for key in ("blocks", "writes"):
            if key in change and not isinstance(change[key], bool):
                raise FieldError(f"{field}.{key}", "Must be true or false.")
        if change.get("writes") and connection.kind == CalendarConnection.ICS:
            raise FieldError(f"{field}.writes", "A calendar feed is read-only.")
        checked.append((calendar, change))
    if sum(1 for _, change in checked if change.get("writes")) > 1:
        raise FieldError("calendars", "At most one calendar receives bookings.")
    changed = started = False
    with booking_transaction():
        bump_schedule(connection.expert_id)
        for calendar, change in checked:
            calendar = db.session.get(ConnectedCalendar, calendar.id, populate_existing=True)
            if change.get("writes"):
                db.session.execute(
                    sa.update(ConnectedCalendar)
                    .where(
                        ConnectedCalendar.expert_id == connection.expert_id,
                        ConnectedCalendar.id != calendar.id,
                    )
                    .values(writes=False)
                    .execution_options(synchronize_session=False)
                )
                db.session.flush()
            if "writes" in change:
                calendar.writes = change["writes"]
            if "blocks" in change and change["blocks"] != calendar.blocks:
                calendar.blocks = change["blocks"]
                if calendar.blocks:
                    started = True
                else:
                    changed |= store.forget(calendar)
        db.session.flush()
    db.session.refresh(connection)
    return changed, started


def remove_connection(connection: CalendarConnection) -> bool:
    """Delete the connection, its calendars, objects and busy times. Returns whether any
    busy time went (the expert's pages must re-read)."""
    expert_id = connection.expert_id
    had_busy = any(calendar.busy_digest for calendar in connection.calendars)
    with booking_transaction():
        bump_schedule(expert_id)
        ids = sa.select(ConnectedCalendar.id).where(
            ConnectedCalendar.connection_id == connection.id
        )
        # Children first, in bulk: the ORM's cascade would load every row first.
        db.session.execute(sa.delete(BusyTime).where(BusyTime.calendar_id.in_(ids)))
        db.session.execute(sa.delete(CalendarObject).where(CalendarObject.calendar_id.in_(ids)))
        db.session.execute(
            sa.delete(ConnectedCalendar).where(ConnectedCalendar.connection_id == connection.id)
        )
        db.session.execute(
            sa.delete(CalendarConnection).where(CalendarConnection.id == connection.id)
        )
    for calendar in connection.calendars:
        db.session.expunge(calendar)
    db.session.expunge(connection)
    return had_busy
