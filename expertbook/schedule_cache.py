"""Cached slot answers, kept correct across server processes by a version in the database.

Every flush that touches what an expert offers (a booking, an event type, weekly hours,
a date override, the expert's zone) bumps `User.schedule_version` in the same transaction.
A cached answer is keyed by that version, so the first request after the commit, on any
process, misses and computes afresh; nothing has to be told to forget anything.

`now` is part of the key at minute precision: slot starts, notice and horizon are whole
minutes, so computing with `now` rounded up to the minute gives exactly the slots the rule
gives for every instant of that minute (see `ceil_minute`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from datetime import datetime, timedelta
from itertools import chain

from flask import current_app
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from .models import AvailabilityRule, Booking, DateOverride, EventType, User

SCHEDULE_MODELS = (Booking, EventType, AvailabilityRule, DateOverride)


def ceil_minute(now: datetime) -> datetime:
    """`now` rounded up to the whole minute.

    For a slot start s, notice n and horizon d (all whole minutes), s >= now + n exactly
    when s >= ceil_minute(now) + n, and s < now + d exactly when s < ceil_minute(now) + d.
    """
    floor = now.replace(second=0, microsecond=0)
    return floor if floor == now else floor + timedelta(minutes=1)


def _expert_id(obj) -> int | None:
    if obj.expert_id is not None:
        return obj.expert_id
    expert = obj.expert  # a new object linked by relationship: its key is set at flush
    return expert.id if expert is not None else None


@event.listens_for(Session, "before_flush")
def _bump_schedule_versions(session: Session, _context, _instances) -> None:
    # A user created in this very flush has nothing cached yet, so has no id to bump.
    experts: set[int] = set()
    with session.no_autoflush:
        for obj in chain(session.new, session.dirty, session.deleted):
            if isinstance(obj, SCHEDULE_MODELS):
                expert_id = _expert_id(obj)
                if expert_id is not None:
                    experts.add(expert_id)
            elif (
                isinstance(obj, User)
                and obj.id is not None
                and inspect(obj).attrs.timezone.history.has_changes()
            ):
                experts.add(obj.id)
        for expert_id in experts:
            expert = session.get(User, expert_id)
            if expert is not None:
                # An SQL expression, so concurrent bumps add up instead of overwriting.
                expert.schedule_version = User.schedule_version + 1


class AnswerCache:
    """A small per-process LRU of answers (bytes), safe for threads and green threads,
    bounded in entries and in bytes; an answer too large to be worth keeping is not kept."""

    def __init__(self, size: int = 512, max_bytes: int = 32 << 20, max_item: int = 256 << 10):
        self.size, self.max_bytes, self.max_item = size, max_bytes, max_item
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.max_item:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += len(value) - (len(old) if old is not None else 0)
            self._items[key] = value
            while len(self._items) > self.size or self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    @property
    def bytes(self) -> int:
        return self._bytes


def slot_answers() -> AnswerCache:
    """This app's cache of slot answers (one per app: two apps may use two databases)."""
    return current_app.extensions.setdefault("expertbook.slot_answers", AnswerCache())
