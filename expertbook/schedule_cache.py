"""Cached slot answers, kept correct across server processes by a version in the database.

Every change to what an expert offers (a booking, an event type, weekly hours, a date
override, the expert's zone) bumps `User.schedule_version` in the same transaction: at flush,
or, for a new booking, in the statement that locks the expert.
A cached answer is keyed by that version, so the first request after the commit, on any
process, misses and computes afresh; nothing has to be told to forget anything.

An answer depends on `now` only through its two ends (notice and horizon), so it is
computed once with the horizon a day wider and trimmed exactly to `now` each time it is
served (`CachedSlots.json_for`); it stays valid for `SLOTS_TTL`.

Live holds block slots too. Placing, releasing and sweeping a hold bump the version like a
booking (holds.py takes the booking lock, whose UPDATE bumps it); but a hold also ends by
itself when it expires, which changes nothing in the database until the sweeper deletes it
(every few seconds). So an answer computed while holds were live is kept only until the
first of them expires (`CachedSlots.changes_at`): a held slot comes back at its expiry,
whether or not the sweeper has run. (A renewal, which does not bump the version, only makes
that answer recomputed once more than needed.)

The expert's working hours (weekly hours, overrides, zone) change far less often than their
bookings, so they have their own version, `User.hours_version`, and their own cache
(`cached_hours`): a booking then reads no hours from the database.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain

from flask import current_app
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from .availability import availability_of
from .models import AvailabilityRule, Booking, DateOverride, EventType, User
from .scheduling import Availability

SCHEDULE_MODELS = (Booking, EventType, AvailabilityRule, DateOverride)
# What an expert's working hours are made of (with the zone): they bump hours_version too.
HOURS_MODELS = (AvailabilityRule, DateOverride)


SLOTS_TTL = timedelta(minutes=10)
# The horizon a cached answer is computed with, beyond the event type's own; it must be
# longer than SLOTS_TTL.
EXTRA_DAYS_AHEAD = 1


@dataclass(frozen=True)
class CachedSlots:
    """One slots answer, computed at `computed_at` with a wider horizon, as JSON pieces."""

    computed_at: datetime
    notice: timedelta
    horizon: timedelta
    starts: list[datetime]
    fragments: list[str]  # '{"start": "...Z", "end": "...Z"}' for each start
    # When the first live hold it left out expires (None: it left none out).
    changes_at: datetime | None = None

    @property
    def size(self) -> int:
        return sum(map(len, self.fragments)) + 64 * len(self.starts)

    def fresh(self, now: datetime) -> bool:
        if self.changes_at is not None and now >= self.changes_at:
            return False
        return self.computed_at <= now < self.computed_at + SLOTS_TTL

    def json_for(self, now: datetime, head: str, tail: str) -> str:
        """The slots offered at `now`: starts at least `notice` and less than `horizon`
        after `now` (every other rule does not move with time)."""
        first = bisect_left(self.starts, now + self.notice)
        last = bisect_left(self.starts, now + self.horizon)
        return head + ",".join(self.fragments[first:last]) + tail


def _expert_id(obj) -> int | None:
    if obj.expert_id is not None:
        return obj.expert_id
    expert = obj.expert  # a new object linked by relationship: its key is set at flush
    return expert.id if expert is not None else None


@event.listens_for(Session, "before_flush")
def _bump_schedule_versions(session: Session, _context, _instances) -> None:
    # A user created in this very flush has nothing cached yet, so has no id to bump.
    experts: set[int] = set()
    hours_changed: set[int] = set()
    with session.no_autoflush:
        for obj in chain(session.new, session.dirty, session.deleted):
            if isinstance(obj, SCHEDULE_MODELS):
                expert_id = _expert_id(obj)
                if expert_id is not None:
                    experts.add(expert_id)
                    if isinstance(obj, HOURS_MODELS):
                        hours_changed.add(expert_id)
            elif (
                isinstance(obj, User)
                and obj.id is not None
                and inspect(obj).attrs.timezone.history.has_changes()
            ):
                experts.add(obj.id)
                hours_changed.add(obj.id)
        for expert_id in experts:
            expert = session.get(User, expert_id)
            if expert is not None:
                # SQL expressions, so concurrent bumps add up instead of overwriting.
                expert.schedule_version = User.schedule_version + 1
                if expert_id in hours_changed:
                    expert.hours_version = User.hours_version + 1


class AnswerCache:
    """A small per-process LRU of answers, safe for threads and green threads, bounded in
    entries and in (approximate) bytes; an answer too large to be worth keeping is not."""

    def __init__(self, size: int = 512, max_bytes: int = 32 << 20, max_item: int = 256 << 10):
        self.size, self.max_bytes, self.max_item = size, max_bytes, max_item
        self._items: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value, size: int | None = None) -> None:
        size = len(value) if size is None else size
        if size > self.max_item:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += size - (old[1] if old is not None else 0)
            self._items[key] = (value, size)
            while len(self._items) > self.size or self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    @property
    def bytes(self) -> int:
        return self._bytes


def slot_answers() -> AnswerCache:
    """This app's cache of slot answers (one per app: two apps may use two databases)."""
    return current_app.extensions.setdefault("expertbook.slot_answers", AnswerCache())


def cached_hours(expert: User, load: Callable[[User], Availability] | None = None) -> Availability:
    """The expert's working hours, from this process's cache when `expert.hours_version`
    (read in the caller's transaction) is the one they were loaded at, else from the
    database (`load`: how, in that transaction; default through the expert's session).

    Hours cannot change without bumping the version, so what is loaded after reading the
    version is never older than its key (at worst newer, when a change committed between
    the two reads, and that change's version never finds it). A booking reads the version
    under the expert's row lock, which any change to the hours needs too, so its hours are
    exactly its version's."""
    cache = current_app.extensions.get("expertbook.hours")
    if cache is None:
        cache = current_app.extensions.setdefault("expertbook.hours", AnswerCache(size=4096))
    key = (expert.id, expert.hours_version)
    hours = cache.get(key)
    if hours is None:
        hours = (load or availability_of)(expert)
        cache.put(key, hours, size=1)
    return hours
