"""Reading and replacing an expert's availability (weekly hours and date overrides)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from .errors import FieldError
from .extensions import db
from .models import AvailabilityRule, DateOverride, User
from .scheduling import Availability, is_valid_timezone, validate_day_intervals

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class AvailabilityError(FieldError):
    """Bad weekly hours, override or zone; `field` names it."""


def availability_of(expert: User) -> Availability:
    """The expert's hours as the pure scheduling core wants them."""
    weekly: dict[int, list[tuple[int, int]]] = {}
    for rule in expert.availability_rules:
        weekly.setdefault(rule.weekday, []).append((rule.start_minute, rule.end_minute))
    overrides = {o.date: [tuple(i) for i in o.intervals] for o in expert.date_overrides}
    return Availability(timezone=expert.timezone, weekly=weekly, overrides=overrides)


def set_availability(
    expert: User,
    timezone: str,
    weekly: Mapping[int, Sequence[tuple[int, int]]],
    overrides: Mapping[date, Sequence[tuple[int, int]]] | None = None,
) -> None:
    """Replace the expert's zone, weekly hours and (when given) overrides; the caller commits.

    Raises:
        AvailabilityError: unknown zone, bad weekday, or a day's intervals invalid/overlapping.
    """
    if not is_valid_timezone(timezone):
        raise AvailabilityError("timezone", "Unknown time zone.")
    checked: dict[int, list[tuple[int, int]]] = {}
    for weekday, intervals in weekly.items():
        if weekday not in range(7):
            raise AvailabilityError("weekly", "Weekdays are mon to sun.")
        try:
            checked[weekday] = validate_day_intervals(intervals)
        except ValueError as error:
            raise AvailabilityError(f"weekly.{WEEKDAYS[weekday]}", str(error)) from None
    checked_overrides: dict[date, list[tuple[int, int]]] = {}
    for day, intervals in (overrides or {}).items():
        try:
            checked_overrides[day] = validate_day_intervals(intervals)
        except ValueError as error:
            raise AvailabilityError(f"overrides.{day.isoformat()}", str(error)) from None

    expert.timezone = timezone
    expert.availability_rules = [
        AvailabilityRule(weekday=weekday, start_minute=start, end_minute=end)
        for weekday, intervals in sorted(checked.items())
        for start, end in intervals
    ]
    if overrides is not None:
        expert.date_overrides.clear()
        # Flush the deletes first: the new rows reuse the (expert, date) unique key.
        db.session.flush()
        expert.date_overrides = [
            DateOverride(date=day, intervals=[list(i) for i in intervals])
            for day, intervals in sorted(checked_overrides.items())
        ]
