"""Writing what a sync read: each calendar's objects, and the busy times built from them.

Everything here runs inside the caller's transaction, with the expert's row locked.
Objects are stored as read (reading.CalendarRead); the busy times the slot engine checks
are then rebuilt from all the calendar's objects, merged and cut into pieces, and rewritten
only when they differ.

Building them is plain integer work over a few thousand rows, but it runs on the server's
event loop, so it lets other requests in every few hundred rows (`_let_others_in`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ..extensions import db
from ..models import MAX_DURATION_MINUTES
from .models import BusyTime, CalendarObject, ConnectedCalendar
from .parse_worker import ObjectRead

log = logging.getLogger("expertbook.calendars")

# Busy times are stored in pieces no longer than the longest booking: the busy query's
# bounds hold for both (slots.busy_intervals).
PIECE = timedelta(minutes=MAX_DURATION_MINUTES)
_PIECE_SECONDS = int(PIECE.total_seconds())
# Busy pieces one calendar may store: a year of back-to-back events is about 730.
MAX_BUSY_PIECES = 20_000
_CHUNK = 200  # rows between two chances for other requests; hrefs per IN list


def _let_others_in() -> None:
    time.sleep(0)  # green under eventlet: the hub serves whoever waits, then comes back


def _row(calendar_id: int, found: ObjectRead) -> dict:
    return {
        "calendar_id": calendar_id,
        "href": found.href[:2048],
        "etag": found.etag[:255],
        "uid": found.uid.strip(),
        "busy": found.busy,
    }


def store_objects(
    calendar: ConnectedCalendar, objects: list[ObjectRead], removed: set[str], *, full: bool
) -> None:
    """Store what was read of the calendar: with `full`, `objects` replace every stored
    one; otherwise they replace the stored objects with their hrefs, and those in `removed`
    go."""
    table = CalendarObject.__table__
    if full:
        db.session.execute(sa.delete(table).where(table.c.calendar_id == calendar.id))
    else:
        gone = sorted(removed | {found.href for found in objects})
        for first in range(0, len(gone), _CHUNK):
            db.session.execute(
                sa.delete(table).where(
                    table.c.calendar_id == calendar.id,
                    table.c.href.in_(gone[first : first + _CHUNK]),
                )
            )
    latest = list({found.href: found for found in objects}.values())
    for first in range(0, len(latest), _CHUNK):
        rows = [_row(calendar.id, found) for found in latest[first : first + _CHUNK]]
        db.session.execute(sa.insert(table), rows)
        _let_others_in()


def stored_etags(calendar_id: int) -> dict[str, str]:
    """The href and ETag of each stored object of the calendar."""
    table = CalendarObject.__table__
    rows = db.session.execute(
        sa.select(table.c.href, table.c.etag).where(table.c.calendar_id == calendar_id),
        execution_options={"yield_per": _CHUNK},
    )
    etags: dict[str, str] = {}
    for chunk in rows.partitions():
        etags.update(chunk)
        _let_others_in()
    return etags


def busy_key(start: datetime, end: datetime, own_uids: frozenset[str]) -> str:
    """What busy times depend on besides the objects: the window and the own UIDs."""
    text = f"{start.isoformat()}|{end.isoformat()}|" + "|".join(sorted(own_uids))
    return hashlib.sha256(text.encode()).hexdigest()


def rebuild_busy(
    calendar: ConnectedCalendar, start: datetime, end: datetime, own_uids: frozenset[str]
) -> bool:
    """Rebuild the calendar's busy times in [start, end) from its stored objects, leaving
    out the expert's own bookings written back (`own_uids`); rewrite them if they differ.
    Returns whether they did."""
    table = CalendarObject.__table__
    # Fetched a chunk at a time: thousands of rows at once hold the event loop too long.
    rows = db.session.execute(
        sa.select(table.c.uid, table.c.busy).where(
            table.c.calendar_id == calendar.id, table.c.busy != ""
        ),
        execution_options={"yield_per": _CHUNK},
    )
    low, high = int(start.timestamp()), int(end.timestamp())
    spans, events = [], 0
    for chunk in rows.partitions():
        _let_others_in()
        for uid, busy in chunk:
            if uid in own_uids:
                continue
            held = False
            for pair in busy.split():
                first, _, last = pair.partition("/")
                span = (max(int(first), low), min(int(last), high))
                if span[0] < span[1]:
                    spans.append(span)
                    held = True
            events += held
    _let_others_in()
    cut = pieces(_merged(spans))
    if len(cut) > MAX_BUSY_PIECES:
        log.warning("calendar %s: %s busy pieces, keeping the first", calendar.id, len(cut))
        cut = cut[:MAX_BUSY_PIECES]
    calendar.busy_events = events
    calendar.busy_key = busy_key(start, end, own_uids)
    text = " ".join(f"{first}/{last}" for first, last in cut)
    digest = hashlib.sha256(text.encode()).hexdigest() if cut else ""
    if digest == calendar.busy_digest:
        return False
    db.session.execute(sa.delete(BusyTime).where(BusyTime.calendar_id == calendar.id))
    rows = [
        {
            "calendar_id": calendar.id,
            "expert_id": calendar.expert_id,
            "start_at": datetime.fromtimestamp(first, UTC),
            "end_at": datetime.fromtimestamp(last, UTC),
        }
        for first, last in cut
    ]
    for first in range(0, len(rows), _CHUNK):
        db.session.execute(sa.insert(BusyTime), rows[first : first + _CHUNK])
        _let_others_in()
    calendar.busy_digest = digest
    return True


def forget(calendar: ConnectedCalendar) -> bool:
    """Drop the calendar's objects, busy times and reading state (it stopped blocking: when
    it blocks again it is read whole). Returns whether any busy time went."""
    had_busy = bool(calendar.busy_digest)
    db.session.execute(sa.delete(BusyTime).where(BusyTime.calendar_id == calendar.id))
    db.session.execute(
        sa.delete(CalendarObject.__table__).where(
            CalendarObject.__table__.c.calendar_id == calendar.id
        )
    )
    calendar.busy_digest = calendar.busy_key = ""
    calendar.sync_token = calendar.sync_modified = calendar.content_digest = ""
    calendar.read_until, calendar.read_zone, calendar.busy_events = None, "", 0
    return had_busy


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort the spans and merge those that overlap or touch."""
    merged: list[list[int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(first, last) for first, last in merged]


def pieces(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cut each span into pieces of at most PIECE (their union is unchanged)."""
    cut = []
    for first, last in spans:
        while first < last:
            cut.append((first, min(first + _PIECE_SECONDS, last)))
            first += _PIECE_SECONDS
    return cut
