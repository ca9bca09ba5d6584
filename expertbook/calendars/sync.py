"""Syncing a connection: one sync per connection at a time (a lease), the network calls
(reading.py) outside any transaction, then one short transaction that stores what was read
(store.py) and bumps the expert's schedule version, so cached slot answers on every process
miss. A failure keeps the last good busy times and backs off (longer for a failure that
will not go away by itself, such as a refused password).

Operations take `now` as an argument; callers announce `slots_changed` after the commit
when `changed` says so.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from ..database import booking_transaction
from ..extensions import db
from ..ics import booking_uid
from ..models import Booking, EventType, User, utcnow
from . import remote, secrets, store
from .feeds import FeedError
from .models import CalendarConnection, ConnectedCalendar
from .reading import CalendarState, Remote, read_remote

log = logging.getLogger("expertbook.calendars")

# A sync holds its connection this long at most: longer than its network calls can take
# (each has a 30 s deadline; a CalDAV sync makes a few), so two never overlap, and short
# enough that a process that died mid-sync does not keep it stale for long.
SYNC_LEASE = timedelta(minutes=3)
MAX_HORIZON_DAYS = 366
DEFAULT_HORIZON_DAYS = 60
# After failures in a row the periodic sync waits longer: a passing failure (the server is
# down) up to an hour; one that needs the expert (a refused password, a missing calendar,
# a page that is not a calendar) from an hour, doubling, up to a day. "Sync now" always
# tries at once.
MAX_PASSING_BACKOFF = timedelta(hours=1)
FIRST_PERMANENT_BACKOFF = timedelta(hours=1)
MAX_PERMANENT_BACKOFF = timedelta(hours=24)


class SyncBusy(Exception):
    """Another sync of the connection did not finish in time; try again soon."""


@dataclass(frozen=True)
class SyncResult:
    connection: CalendarConnection | None  # None: removed while it synced
    # Busy times changed: the expert's pages must re-read their slots.
    changed: bool


def allow_private() -> bool:
    return bool(current_app.config["ALLOW_PRIVATE_HOSTS"])


def sync_every() -> timedelta:
    return timedelta(minutes=float(current_app.config["CALENDAR_SYNC_MINUTES"]))


def next_sync(now: datetime) -> datetime:
    """Spread over ±20% of the interval, so experts who connected at once drift apart."""
    return now + sync_every() * random.uniform(0.8, 1.2)


def backoff(failures: int, *, permanent: bool) -> timedelta:
    """How long the periodic sync waits after `failures` failed syncs in a row."""
    if permanent:
        return min(FIRST_PERMANENT_BACKOFF * 2 ** min(failures - 1, 10), MAX_PERMANENT_BACKOFF)
    return min(sync_every() * 2 ** min(failures - 1, 10), max(MAX_PASSING_BACKOFF, sync_every()))


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
    return today - store.PIECE, today + timedelta(days=days + 1)


def own_uids(expert_id: int, start: datetime, end: datetime) -> frozenset[str]:
    """The UIDs of the expert's own bookings in the window, as written back to a calendar:
    they block time as bookings already. (A booking where the expert is the client is
    another expert's, and blocks this one's time through their calendar.)"""
    # Every UID has the same "@host" ending: found once, not once per booking.
    ending = booking_uid("", current_app.config["BASE_URL"])
    rows = db.session.execute(
        sa.select(Booking.uid).where(
            Booking.expert_id == expert_id, Booking.start_at < end, Booking.end_at > start
        ),
        execution_options={"yield_per": 500},  # an expert may have thousands: in chunks
    )
    uids = set()
    for chunk in rows.partitions():
        uids.update(uid + ending for (uid,) in chunk)
        time.sleep(0)  # green under eventlet: other requests get their turn
    return frozenset(uids)


def state_of(calendar: ConnectedCalendar) -> CalendarState:
    """Where reading the calendar stands; without a sync token, its objects' ETags too."""
    etags = {}
    if calendar.read_until is not None and not calendar.sync_token:
        etags = store.stored_etags(calendar.id)
    return CalendarState(
        token=calendar.sync_token,
        modified=calendar.sync_modified,
        digest=calendar.content_digest,
        read_until=calendar.read_until,
        zone=calendar.read_zone,
        etags=etags,
    )


# ---------------------------------------------------------------- writing (one transaction)


def lock_expert(expert_id: int) -> None:
    """The expert's row lock, which bookings and every calendar change take first: one lock
    order, so no two of them can deadlock."""
    db.session.execute(
        sa.select(User.id).where(User.id == expert_id).with_for_update(key_share=True)
    )


def bump_schedule(expert_id: int) -> None:
    """Bump the expert's schedule version (cached slot answers miss), taking the row lock a
    booking takes, so a booking in progress finishes before this change commits."""
    # The ORM's default synchronisation also moves the version of a loaded User.
    db.session.execute(
        sa.update(User)
        .where(User.id == expert_id)
        .values(schedule_version=User.schedule_version + 1)
    )


def apply(
    connection: CalendarConnection,
    fetched: Remote,
    now: datetime,
    span: tuple[datetime, datetime],
    own: frozenset[str],
) -> bool:
    """Bring the connection's calendars and busy times in line with what was read (inside
    the caller's transaction); busy times are kept for `span`. Returns whether any busy
    time changed."""
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
        if not calendar.blocks:
            continue
        got = fetched.reads.get(calendar.url)
        if got is not None:
            store.store_objects(calendar, got.objects, got.removed, full=got.full)
            calendar.sync_token, calendar.sync_modified = got.token, got.modified
            calendar.content_digest = got.digest
            calendar.read_until, calendar.read_zone = got.read_until, got.zone
        stale = calendar.busy_key != store.busy_key(*span, own)
        if (got is not None and (got.full or got.objects or got.removed)) or stale:
            changed |= store.rebuild_busy(calendar, *span, own)
    for url, calendar in known.items():
        if url not in seen:  # gone from the server: its busy times go with it
            changed |= bool(calendar.busy_digest)
            connection.calendars.remove(calendar)
    connection.status, connection.error = "ok", ""
    connection.last_synced_at = now
    connection.failures = 0
    return changed


# ---------------------------------------------------------------- syncing


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
    `due_only`, it is not due). A failed read keeps the last good busy times, records the
    error in words on the connection, and backs off."""
    lease = claim(connection_id, now, due_only=due_only)
    if lease is None:
        return None
    connection = db.session.get(CalendarConnection, connection_id, populate_existing=True)
    if connection is None:  # removed meanwhile
        return SyncResult(None, False)
    expert_id = connection.expert_id
    expert = db.session.get(User, expert_id)
    span = window(expert_id, now)
    own = own_uids(expert_id, *span)
    blocking = [c for c in connection.calendars if c.blocks]
    states = {calendar.url: state_of(calendar) for calendar in blocking}
    db.session.commit()
    permanent = False
    try:
        password = secrets.decrypt(connection.secret)
        fetched = read_remote(
            connection.kind,
            connection.url,
            connection.username,
            password,
            start=span[0],
            end=span[1],
            zone=expert.timezone,
            allow_private=allow_private(),
            states=states,
            read_only={calendar.url for calendar in blocking},
            now=now,
        )
        error = None
    except (remote.RemoteError, FeedError, secrets.SecretUnreadable) as failure:
        fetched, error = None, getattr(failure, "message", None) or str(failure)
        permanent = getattr(failure, "permanent", True)
    except Exception:  # noqa: BLE001 - a library's surprise must not leave the lease held
        log.exception("calendar sync of connection %s failed", connection_id)
        fetched, error = None, "The calendar could not be read (an unexpected error)."
    changed = False
    with booking_transaction():
        lock_expert(expert_id)
        connection = db.session.get(CalendarConnection, connection_id, populate_existing=True)
        if connection is None:  # removed meanwhile
            return SyncResult(None, False)
        if connection.sync_lease_until != lease:
            # This sync outlived its lease and another took over: what it read is older.
            log.warning("calendar sync of connection %s outlived its lease", connection_id)
            return SyncResult(connection, False)
        if fetched is not None:
            changed = apply(connection, fetched, now, span, own)
            if changed:
                bump_schedule(connection.expert_id)
            connection.next_sync_at = next_sync(now)
        else:
            connection.status, connection.error = "error", error
            connection.failures += 1
            wait = backoff(connection.failures, permanent=permanent)
            connection.next_sync_at = now + wait
            log.warning("calendar connection %s: %s (next try in %s)", connection_id, error, wait)
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
