"""The caller's availability over the API: time zone, weekly hours and date overrides.

Intervals travel as ["HH:MM", "HH:MM"] in the expert's zone; "24:00" closes a day at midnight.
Every error names the exact spot (`weekly.mon[1]`, `overrides[0].date`) so a client can point
at the field, while the rules themselves stay in `availability.set_availability`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import jsonify

from ..availability import WEEKDAYS, AvailabilityError, set_availability
from ..extensions import db
from ..models import User
from ..realtime import announce_slots_changed
from ..scheduling import format_hhmm, parse_hhmm, validate_day_intervals
from . import bp
from .auth import expert_api_user
from .inputs import invalid, json_object, parse_day, parse_timezone

FIELDS = ("timezone", "weekly", "overrides")
OVERRIDE_FIELDS = ("date", "intervals")


def _hhmm_pairs(intervals) -> list[list[str]]:
    return [[format_hhmm(start), format_hhmm(end)] for start, end in intervals]


def availability_payload(expert: User) -> dict[str, Any]:
    """The API shape: all seven weekdays (an empty list is a day off) and every override."""
    weekly: dict[str, list] = {day: [] for day in WEEKDAYS}
    for rule in expert.availability_rules:
        weekly[WEEKDAYS[rule.weekday]].append([rule.start_minute, rule.end_minute])
    return {
        "timezone": expert.timezone,
        "weekly": {day: _hhmm_pairs(intervals) for day, intervals in weekly.items()},
        "overrides": [
            {"date": override.date.isoformat(), "intervals": _hhmm_pairs(override.intervals)}
            for override in expert.date_overrides
        ],
    }


def _interval(item: Any, field: str) -> tuple[int, int]:
    if not (isinstance(item, list) and len(item) == 2 and all(isinstance(t, str) for t in item)):
        raise invalid(field, 'An interval is ["HH:MM", "HH:MM"].')
    try:
        start, end = parse_hhmm(item[0]), parse_hhmm(item[1], allow_24=True)
    except ValueError:
        raise invalid(field, 'Times are "HH:MM", 00:00 to 23:59 ("24:00" as an end).') from None
    if start >= end:
        raise invalid(field, "An interval must end after it starts.")
    return start, end


def _day_intervals(value: Any, field: str) -> list[tuple[int, int]]:
    """One day's intervals, checked item by item (`field[i]`) and then together (`field`)."""
    if not isinstance(value, list):
        raise invalid(field, 'Give a list of ["HH:MM", "HH:MM"] intervals.')
    intervals = [_interval(item, f"{field}[{i}]") for i, item in enumerate(value)]
    try:
        return validate_day_intervals(intervals)
    except ValueError as error:
        message = str(error)
        raise invalid(field, message[:1].upper() + message[1:] + ".") from None


def _weekly(value: Any) -> dict[int, list[tuple[int, int]]]:
    if not isinstance(value, dict):
        raise invalid("weekly", 'Give an object of weekdays, e.g. {"mon": [["09:00", "17:00"]]}.')
    for key in value:
        if key not in WEEKDAYS:
            raise invalid(f"weekly.{key}", "Weekdays are mon to sun.", "unknown_field")
    return {
        WEEKDAYS.index(day): _day_intervals(intervals, f"weekly.{day}")
        for day, intervals in value.items()
    }


def _overrides(value: Any) -> dict[date, list[tuple[int, int]]]:
    if not isinstance(value, list):
        raise invalid("overrides", 'Give a list of {"date", "intervals"} objects.')
    overrides: dict[date, list[tuple[int, int]]] = {}
    for i, item in enumerate(value):
        field = f"overrides[{i}]"
        if not isinstance(item, dict):
            raise invalid(field, 'An override is {"date": "YYYY-MM-DD", "intervals": [...]}.')
        for key in item:
            if key not in OVERRIDE_FIELDS:
                raise invalid(f"{field}.{key}", "Unknown field.", "unknown_field")
        for key in OVERRIDE_FIELDS:
            if key not in item:
                raise invalid(f"{field}.{key}", "This field is required.", "missing_field")
        day = parse_day(item["date"], f"{field}.date")
        if day in overrides:
            raise invalid(f"{field}.date", "This date already has an override.")
        overrides[day] = _day_intervals(item["intervals"], f"{field}.intervals")
    return overrides


@bp.get("/availability")
def get_availability():
    """The caller's time zone, weekly hours and date overrides."""
    return jsonify(availability_payload(expert_api_user()))


@bp.put("/availability")
def put_availability():
    """Replace the caller's availability; weekdays left out are days off, and `overrides`
    left out keeps the existing overrides (an empty list removes them)."""
    expert = expert_api_user()
    data = json_object()
    for key in data:
        if key not in FIELDS:
            raise invalid(key, "Unknown field.", "unknown_field")
    for key in ("timezone", "weekly"):
        if key not in data:
            raise invalid(key, "This field is required.", "missing_field")
    timezone = parse_timezone(data["timezone"], "timezone")
    weekly = _weekly(data["weekly"])
    overrides = _overrides(data["overrides"]) if "overrides" in data else None
    try:
        set_availability(expert, timezone, weekly, overrides)
    except AvailabilityError as error:
        raise invalid(error.field, error.message) from None
    db.session.commit()
    announce_slots_changed(expert.id)  # open booking pages re-read their slots
    return jsonify(availability_payload(expert))
