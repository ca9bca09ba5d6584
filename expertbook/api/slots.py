"""Offered slots of an event type, for anyone: the booking page and integrators read these."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app, request
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import EventType
from ..schedule_cache import EXTRA_DAYS_AHEAD, CachedSlots, slot_answers
from ..scheduling import canonical_zone, iso_z
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


def _active_event_type(event_type_id: int) -> EventType:
    """The event type with its expert (and so the expert's schedule_version) in one query;
    the hours are loaded only when the answer is not cached."""
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
    event_type = _active_event_type(event_type_id)
    day_from, day_to = _required_day("from"), _required_day("to")
    if day_to < day_from:
        raise invalid("to", "`to` must not be before `from`.")
    if (day_to - day_from).days + 1 > MAX_DAYS:
        raise invalid("to", f"At most {MAX_DAYS} days a call.")
    tz = request.args.get("tz")
    # Today's name of the zone (Asia/Kolkata for a browser's Asia/Calcutta): the page shows it.
    tz = canonical_zone(event_type.expert.timezone if tz is None else parse_timezone(tz, "tz"))
    now = datetime.now(UTC)
    # The expert too: SQLite may give a deleted event type's id to another expert's new one.
    expert = event_type.expert
    key = (event_type.id, expert.id, expert.schedule_version, day_from, day_to, tz)
    cache = slot_answers()
    cached = cache.get(key)
    if cached is None or not cached.fresh(now):
        cached = _compute(event_type, day_from, day_to, tz, now)
        cache.put(key, cached, cached.size)
    head = f'{{"event_type_id": {event_type.id}, "timezone": {json.dumps(tz)}, "slots": ['
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
        fragments=[f'{{"start": "{iso_z(s.start)}", "end": "{iso_z(s.end)}"}}' for s in slots],
        changes_at=offered.changes_at,
    )
