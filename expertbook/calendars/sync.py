"""Calendar operations: connect, sync, change, remove. Network calls (remote.py) always run
outside any transaction; what they read is then written in one short transaction that also
bumps the expert's schedule version, so cached slot answers on every process miss.

They take the expert and `now` as arguments and raise FieldError for bad input; callers
announce `slots_changed` after the commit when `changed` says so.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from ..database import booking_transaction
from ..errors import FieldError
from ..extensions import db
from ..ics import booking_uid
from ..models import MAX_DURATION_MINUTES, Booking, EventType, User, utcnow
from ..scheduling import Interval
from . import remote, secrets
from .feeds import FeedError
from .models import BusyTime, CalendarConnection, ConnectedCalendar
from .parse_worker import parse

log = logging.getLogger("expertbook.calendars")

# A sync holds its connection this long at most: longer than its network calls can take
# (each has a 30 s deadline; a CalDAV sync makes a few), so two never overlap, and short
# enough that a process that died mid-sync does not keep it stale for long.
SYNC_LEASE = timedelta(minutes=3)
MAX_HORIZON_DAYS = 366
DEFAULT_HORIZON_DAYS = 60
# Busy times are stored in pieces no longer than the longest booking: the busy query's
# bounds hold for both (slots.busy_intervals).
PIECE = timedelta(minutes=MAX_DURATION_MINUTES)
MAX_URL = 2048
MAX_USERNAME = 255
MAX_PASSWORD = 1024
MAX_CONNECTIONS = 10
# Busy pieces one calendar may store: a year of back-to-back events is about 730.
MAX_BUSY_PIECES = 20_000


class SyncBusy(Exception):
    """Another sync of the connection did not finish in time; try again soon."""


@dataclass(frozen=True)
class Remote:
    """What a connection's server said: its calendars and, for those read, their busy times."""

    calendars: list[remote.RemoteCalendar]
    busy: dict[str, list[Interval]]  # by calendar URL, cut into stored pieces (`pieces`)


@dataclass(frozen=True)
class SyncResult:
    connection: CalendarConnection | None  # None: removed while it synced
    # Busy times changed: the expert's pages must re-read their slots.
    changed: bool


def _allow_private() -> bool:
    return bool(current_app.config["ALLOW_PRIVATE_HOSTS"])


def sync_every() -> timedelta:
    return timedelta(minutes=float(current_app.config["CALENDAR_SYNC_MINUTES"]))


def _next_sync(now: datetime) -> datetime:
    """Spread over ±20% of the interval, so experts who connected at once drift apart."""
    return now + sync_every() * random.uniform(0.8, 1.2)


def window(expert_id: int, now: datetime) -> tuple[datetime, datetime]:
    """The span busy times are kept for: from a little before today to the furthest any of
    the expert's active event types books ahead (at most a year). Whole UTC days, so an
    unchanged calendar read again the same day clips to the same busy times (and writes
    nothing)."""
    days = db.session.scalar(
        sa.select(sa.func.max(EventType.max_days_ahead)).where(
            EventType.expert_id == expert_id, EventType.active.is_(True)
        )
    )
    days = min(days or DEFAULT_HORIZON_DAYS, MAX_HORIZON_DAYS) + 1
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return today - PIECE, today + timedelta(days=days + 1)


def pieces(intervals: Iterable[Interval]) -> list[Interval]:
    """Cut each interval into pieces of at most PIECE (their union is unchanged)."""
    cut = []
    for interval in intervals:
        start = interval.start
        while start < interval.end:
            end = min(start + PIECE, interval.end)
            cut.append(Interval(start, end))
            start = end
    return cut


def _digest(intervals: list[Interval]) -> str:
    text = "|".join(f"{i.start.isoformat()}/{i.end.isoformat()}" for i in intervals)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- reading (network)


def read_remote(
    kind: str,
    url: str,
    username: str,
    password: str,
    *,
    start: datetime,
    end: datetime,
    zone: str,
    own_uids: frozenset[str] = frozenset(),
    read: set[str] | None = None,
) -> Remote:
    """Discover the calendars behind a connection and read the busy times of those in `read`
    (None: all of them), skipping events whose UID is in `own_uids`. Raises
    remote.RemoteError or FeedError, whose message is for users."""
    allow_private = _allow_private()
    options = dict(start=start, end=end, default_tz=zone, own_uids=own_uids)
    if kind == CalendarConnection.ICS:
        data = remote.fetch_feed(url, allow_private=allow_private)
        name = urlsplit(url).hostname or "Calendar feed"
        return Remote([remote.RemoteCalendar(url, name)], {url: _checked(parse(data, **options))})
    found = remote.discover(url, username, password, allow_private=allow_private)
    # What a server lists is checked like input: one entry per address, none too long.
    calendars = list({c.url: c for c in found if len(c.url) <= MAX_URL}.values())
    if not calendars:
        raise FeedError("No calendars with events were found at that address.")
    busy = {}
    for calendar in calendars:
        if read is not None and calendar.url not in read:
            continue
        objects = remote.calendar_events(
            calendar.url, username, password, start=start, end=end, allow_private=allow_private
        )
        busy[calendar.url] = _checked(parse(objects, **options))
    return Remote(calendars, busy)


def _checked(busy: list[Interval]) -> list[Interval]:
    """The busy times cut into the pieces they are stored in, if not too many."""
    cut = pieces(busy)
    if len(cut) > MAX_BUSY_PIECES:
        raise FeedError("The calendar holds more busy times than ExpertBook keeps.")
    return cut


def own_uids(expert_id: int, start: datetime, end: datetime) -> frozenset[str]:
    """The UIDs of the expert's own bookings in the window, as written back to a calendar:
    they block time as bookings already. (A booking where the expert is the client is
    another expert's, and blocks this one's time through their calendar.)"""
    base_url = current_app.config["BASE_URL"]
    uids = db.session.scalars(
        sa.select(Booking.uid).where(
            Booking.expert_id == expert_id, Booking.start_at < end, Booking.end_at > start
        )
    )
    return frozenset(booking_uid(uid, base_url) for uid in uids)


# ---------------------------------------------------------------- writing (one transaction)


def _lock_expert(expert_id: int) -> None:
    """The expert's row lock, which bookings and every calendar change take first: one lock
    order, so no two of them can deadlock."""
    db.session.execute(
        sa.select(User.id).where(User.id == expert_id).with_for_update(key_share=True)
    )


def _bump_schedule(expert_id: int) -> None:
    """Bump the expert's schedule version (cached slot answers miss), taking the row lock a
    booking takes, so a booking in progress finishes before this change commits."""
    # The ORM's default synchronisation also moves the version of a loaded User.
    db.session.execute(
        sa.update(User)
        .where(User.id == expert_id)
        .values(schedule_version=User.schedule_version + 1)
    )


def _store_busy(calendar: ConnectedCalendar, cut: list[Interval]) -> bool:
    """Replace the calendar's busy times (read_remote's pieces) when they differ; True if
    they did."""
    digest = _digest(cut)
    if digest == calendar.busy_digest:
        return False
    db.session.execute(sa.delete(BusyTime).where(BusyTime.calendar_id == calendar.id))
    if cut:
        db.session.execute(
            sa.insert(BusyTime),
            [
                {
                    "calendar_id": calendar.id,
                    "expert_id": calendar.expert_id,
                    "start_at": piece.start,
                    "end_at": piece.end,
                }
                for piece in cut
            ],
        )
    calendar.busy_digest = digest
    return True


def _clear_busy(calendar: ConnectedCalendar) -> bool:
    if not calendar.busy_digest:
        return False
    db.session.execute(sa.delete(BusyTime).where(BusyTime.calendar_id == calendar.id))
    calendar.busy_digest = ""
    return True


def _apply(connection: CalendarConnection, fetched: Remote, now: datetime) -> bool:
    """Bring the connection's calendars and busy times in line with what was read (inside
    the caller's transaction). Returns whether any busy time changed."""
    changed = False
    known = {calendar.url: calendar for calendar in connection.calendars}
    seen = set()
    for found in fetched.calendars:
        seen.add(found.url)
        calendar = known.get(found.url)
        if calendar is None:
            calendar = ConnectedCalendar(
                expert_id=connection.expert_id, url=found.url, blocks=True, writes=False
            )
            connection.calendars.append(calendar)
            db.session.flush()
        calendar.name = found.name[:255]
        if calendar.url in fetched.busy and calendar.blocks:
            changed |= _store_busy(calendar, fetched.busy[calendar.url])
    for url, calendar in known.items():
        if url not in seen:  # gone from the server: its busy times go with it
            changed |= bool(calendar.busy_digest)
            connection.calendars.remove(calendar)
    connection.status, connection.error = "ok", ""
    connection.last_synced_at = now
    return changed


# ---------------------------------------------------------------- operations


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
        url = remote.check_url(url.strip(), allow_private=_allow_private())
    except remote.RemoteError as error:
        raise FieldError("url", error.message) from None
    return kind, url, username, password


def connect_calendar(
    expert: User, kind, url, username="", password="", *, now: datetime
) -> CalendarConnection:
    """Connect a CalDAV account or an ICS feed, read it once, and store it with its busy
    times; nothing is stored when it cannot be read. Raises FieldError (the reason in words)."""
    kind, url, username, password = check_connection_input(kind, url, username, password)
    count = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(CalendarConnection)
        .where(CalendarConnection.expert_id == expert.id)
    )
    if count >= MAX_CONNECTIONS:
        raise FieldError("url", f"At most {MAX_CONNECTIONS} calendar connections.")
    start, end = window(expert.id, now)
    own = own_uids(expert.id, start, end)
    db.session.commit()  # no transaction stays open across the network calls
    try:
        fetched = read_remote(
            kind, url, username, password, start=start, end=end, zone=expert.timezone, own_uids=own
        )
    except (remote.RemoteError, FeedError) as error:
        raise FieldError("url", error.message) from None
    with booking_transaction():
        _bump_schedule(expert.id)
        connection = CalendarConnection(
            expert_id=expert.id,
            kind=kind,
            url=url,
            username=username,
            secret=secrets.encrypt(password),
            next_sync_at=_next_sync(now),
        )
        db.session.add(connection)
        db.session.flush()
        _apply(connection, fetched, now)
    return connection


def _lease_free(now: datetime):
    return sa.or_(
        CalendarConnection.sync_lease_until.is_(None),
        CalendarConnection.sync_lease_until < now,
    )


def claim(connection_id: int, now: datetime, *, due_only: bool) -> datetime | None:
    """Take the connection's sync lease, atomically on every database and process. Returns
    the lease (its end) if this caller may sync it now, else None."""
    lease = (now + SYNC_LEASE).replace(microsecond=0)
    query = (
        sa.update(CalendarConnection)
        .where(CalendarConnection.id == connection_id, _lease_free(now))
        .values(sync_lease_until=lease)
        .execution_options(synchronize_session=False)
    )
    if due_only:
        query = query.where(CalendarConnection.next_sync_at <= now)
    with booking_transaction():
        claimed = db.session.execute(query).rowcount == 1
    return lease if claimed else None


def sync_connection(connection_id: int, *, now: datetime, due_only: bool = False):
    """Re-read one connection (if no other sync holds it) and store what changed.

    Returns a SyncResult, or None when another sync holds the connection (or, with
    `due_only`, it is not due). A failed read keeps the last good busy times and records
    the error in words on the connection."""
    lease = claim(connection_id, now, due_only=due_only)
    if lease is None:
        return None
    connection = db.session.get(CalendarConnection, connection_id, populate_existing=True)
    if connection is None:  # removed meanwhile
        return SyncResult(None, False)
    expert_id = connection.expert_id
    expert = db.session.get(User, expert_id)
    start, end = window(expert_id, now)
    own = own_uids(expert_id, start, end)
    read = {c.url for c in connection.calendars if c.blocks}
    db.session.commit()
    try:
        password = secrets.decrypt(connection.secret)
        fetched = read_remote(
            connection.kind,
            connection.url,
            connection.username,
            password,
            start=start,
            end=end,
            zone=expert.timezone,
            own_uids=own,
            read=read,
        )
        error = None
    except (remote.RemoteError, FeedError, secrets.SecretUnreadable) as failure:
        fetched, error = None, getattr(failure, "message", None) or str(failure)
    except Exception:  # noqa: BLE001 - a library's surprise must not leave the lease held
        log.exception("calendar sync of connection %s failed", connection_id)
        fetched, error = None, "The calendar could not be read (an unexpected error)."
    changed = False
    with booking_transaction():
        _lock_expert(expert_id)
        connection = db.session.get(CalendarConnection, connection_id, populate_existing=True)
        if connection is None:  # removed meanwhile
            return SyncResult(None, False)
        if connection.sync_lease_until != lease:
            # This sync outlived its lease and another took over: what it read is older.
            log.warning("calendar sync of connection %s outlived its lease", connection_id)
            return SyncResult(connection, False)
        if fetched is not None:
            changed = _apply(connection, fetched, now)
            if changed:
                _bump_schedule(connection.expert_id)
        else:
            connection.status, connection.error = "error", error
            log.warning("calendar connection %s: %s", connection_id, error)
        connection.next_sync_at = _next_sync(now)
        connection.sync_lease_until = None
    return SyncResult(connection, changed)


def sync_now(connection: CalendarConnection, *, wait: float = 40.0) -> SyncResult:
    """Sync at the expert's request, now. If another sync holds the connection, wait until
    it lets go, then sync afresh (what that one read may predate the expert's change).

    Raises:
        SyncBusy: the other sync still held it after `wait` seconds.
    """
    deadline = time.monotonic() + wait
    while True:
        result = sync_connection(connection.id, now=utcnow())
        if result is not None:
            return result
        while True:
            now = utcnow()
            free = db.session.scalar(
                sa.select(sa.func.count())
                .select_from(CalendarConnection)
                .where(CalendarConnection.id == connection.id, _lease_free(now))
            )
            db.session.commit()
            if free:
                break
            if time.monotonic() > deadline:
                raise SyncBusy("A sync of this calendar is still running; try again soon.")
            time.sleep(0.25)  # green under eventlet


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
        _bump_schedule(connection.expert_id)
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
                    changed |= _clear_busy(calendar)
        db.session.flush()
    db.session.refresh(connection)
    return changed, started


def remove_connection(connection: CalendarConnection) -> bool:
    """Delete the connection, its calendars and busy times. Returns whether any busy time
    went (the expert's pages must re-read)."""
    expert_id = connection.expert_id
    had_busy = any(calendar.busy_digest for calendar in connection.calendars)
    with booking_transaction():
        _bump_schedule(expert_id)
        ids = sa.select(ConnectedCalendar.id).where(
            ConnectedCalendar.connection_id == connection.id
        )
        # Children first, in bulk: the ORM's cascade would load every busy time first.
        db.session.execute(sa.delete(BusyTime).where(BusyTime.calendar_id.in_(ids)))
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


def due_connections(now: datetime, limit: int = 20) -> list[int]:
    """Ids of connections whose periodic sync is due and that no sync holds."""
    ids = db.session.scalars(
        sa.select(CalendarConnection.id)
        .where(CalendarConnection.next_sync_at <= now, _lease_free(now))
        .order_by(CalendarConnection.next_sync_at)
        .limit(limit)
    ).all()
    db.session.commit()
    return list(ids)
