"""Offered slots of an event type, for anyone: the booking page and integrators read these."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app, request
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import EventType, User
from ..schedule_cache import EXTRA_DAYS_AHEAD, CachedSlots, slot_answers
from ..scheduling import Interval, canonical_zone, iso_z
from ..slots import offer
from . import bp
from .errors import ApiError
from .inputs import invalid, parse_day, parse_timezone

MAX_DAYS = 62


def _required_day(name: str) -> date:
    value = request.args.get(name)
    if value is None:
        raise invalid(name, "Required: a date as YYYY-MM-DD.", "missing_field")
    day = parse_day(value, name)
    # The calendar's first and last days have no midnight on one side in every zone.
    if day in (date.min, date.max):
        raise invalid(name, "Out of range.")
    return day


# What a cached answer is found by, read as one plain row: an answer from the cache needs
# nothing else (the ORM's objects are loaded only to compute one).
_LOOKUP = (
    sa.select(EventType.active, EventType.expert_id, User.timezone, User.schedule_version)
    .join(User, User.id == EventType.expert_id)
    .where(EventType.id == sa.bindparam("event_type_id"))
)


def _active_event_type(event_type_id: int) -> EventType:
    """The event type with its expert in one query; the hours are loaded only when the
    answer is computed."""
    event_type = db.session.scalar(
        sa.select(EventType)
        .where(EventType.id == event_type_id)
        .options(joinedload(EventType.expert))
    )
    if event_type is None or not event_type.active:
        raise ApiError(404, "not_found", "No such event type.")
    return event_type


@bp.get("/event-types/<int:event_type_id>/slots")
def event_type_slots(event_type_id: int):
    """Slots offered on the days `from`..`to` (both included), read in `tz`, as UTC."""
    found = db.session.execute(_LOOKUP, {"event_type_id": event_type_id}).first()
    if found is None or not found.active:
        raise ApiError(404, "not_found", "No such event type.")
    day_from, day_to = _required_day("from"), _required_day("to")
    if day_to < day_from:
        raise invalid("to", "`to` must not be before `from`.")
    if (day_to - day_from).days + 1 > MAX_DAYS:
        raise invalid("to", f"At most {MAX_DAYS} days a call.")
    tz = request.args.get("tz")
    # Today's name of the zone (Asia/Kolkata for a browser's Asia/Calcutta): the page shows it.
    tz = canonical_zone(found.timezone if tz is None else parse_timezone(tz, "tz"))
    now = datetime.now(UTC)
    # The expert too: SQLite may give a deleted event type's id to another expert's new one.
    key = (event_type_id, found.expert_id, found.schedule_version, day_from, day_to, tz)
    cache = slot_answers()
    cached = cache.get(key)
    if cached is None or not cached.fresh(now):
        # Loaded after the version was read, so never older than the key (at worst newer).
        cached = _compute(_active_event_type(event_type_id), day_from, day_to, tz, now)
        cache.put(key, cached, cached.size)
    head = f'{{"event_type_id": {event_type_id}, "timezone": {json.dumps(tz)}, "slots": ['
    body = cached.json_for(now, head, "]}")
    return current_app.response_class(body, mimetype="application/json")


def _compute(event_type: EventType, day_from: date, day_to: date, tz: str, now: datetime):
    offered = offer(
        event_type,
        day_from=day_from,
        day_to=day_to,
        viewer_tz=tz,
        now=now,
        extra_days_ahead=EXTRA_DAYS_AHEAD,
    )
    slots = offered.slots
    return CachedSlots(
        computed_at=now,
        notice=timedelta(minutes=event_type.min_notice_minutes),
        horizon=timedelta(days=event_type.max_days_ahead),
        starts=[slot.start for slot in slots],
        fragments=_fragments(slots),
        changes_at=offered.changes_at,
    )


def _fragments(slots: list[Interval]) -> list[str]:
    """'{"start": "...Z", "end": "...Z"}' of each slot; a slot that starts where the one
    before ended (back to back, the usual grid) reuses that end's text."""
    fragments = []
    end, end_text = None, ""
    for slot in slots:
        start_text = end_text if slot.start == end else iso_z(slot.start)
        end, end_text = slot.end, iso_z(slot.end)
        fragments.append(f'{{"start": "{start_text}", "end": "{end_text}"}}')
    return fragments
