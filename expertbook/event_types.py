"""Event type fields and their rules, shared by the dashboard form and the JSON API."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .booking import lock_expert
from .database import booking_transaction
from .errors import FieldError
from .extensions import db
from .models import (
    MAX_BUFFER_MINUTES,
    MAX_DAYS_AHEAD,
    MAX_DURATION_MINUTES,
    MIN_DURATION_MINUTES,
    Booking,
    EventType,
    User,
)
from .questions import check_questions
from .text import multiline as clean_multiline

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
LOCATIONS = {"zoom": "Zoom", "google_meet": "Google Meet"}

# name -> (minimum, maximum, default); bounds are inclusive.
INT_FIELDS: dict[str, tuple[int, int, int | None]] = {
    "duration_minutes": (MIN_DURATION_MINUTES, MAX_DURATION_MINUTES, None),
    "buffer_before_minutes": (0, MAX_BUFFER_MINUTES, 0),
    "buffer_after_minutes": (0, MAX_BUFFER_MINUTES, 0),
    "min_notice_minutes": (0, 60 * 24 * 365, 0),
    "max_days_ahead": (1, MAX_DAYS_AHEAD, 60),
}
# Reminder mails: minutes before the start, at most MAX_REMINDERS distinct values.
MAX_REMINDERS = 3
REMINDER_MINUTES_RANGE = (5, 7 * 24 * 60)
DEFAULT_REMINDER_MINUTES = (1440,)
# name -> (minimum, maximum) of the fields where null means "no such rule".
OPTIONAL_INT_FIELDS: dict[str, tuple[int, int]] = {
    "slot_interval_minutes": (5, 720),
    # A pending request's deadline: hours after it is made (and never after the start).
    "confirm_within_hours": (1, 720),
    # Bookings (confirmed or pending) a day and a week at most, in the expert's zone.
    "max_per_day": (1, 1000),
    "max_per_week": (1, 1000),
}
FIELDS = (
    "title",
    "slug",
    "duration_minutes",
    "description",
    "location",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "min_notice_minutes",
    "max_days_ahead",
    "slot_interval_minutes",
    "active",
    "reminder_minutes",
    "requires_confirmation",
    "confirm_within_hours",
    "max_per_day",
    "max_per_week",
    "questions",
)
REQUIRED = ("title", "slug", "duration_minutes")


class EventTypeError(FieldError):
    """Bad input for an event type; `field` names it."""


def _int(name: str, value: Any, low: int, high: int) -> int:
    # bool is an int in Python; JSON true is not a number of minutes.
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventTypeError(name, "Must be a whole number.")
    if not low <= value <= high:
        raise EventTypeError(name, f"Must be between {low} and {high}.")
    return value


def _text(name: str, value: Any, max_length: int, required: bool, multiline: bool = False) -> str:
    if not isinstance(value, str):
        raise EventTypeError(name, "Must be text.")
    value = clean_multiline(value) if multiline else value.strip()
    if not multiline and any(not ch.isprintable() for ch in value):
        raise EventTypeError(name, "Must be one line of text, without control characters.")
    if required and not value:
        raise EventTypeError(name, "Must not be empty.")
    if len(value) > max_length:
        raise EventTypeError(name, f"At most {max_length} characters.")
    return value


def _reminder_minutes(value: Any) -> list[int]:
    """At most MAX_REMINDERS distinct whole minutes, each in REMINDER_MINUTES_RANGE; the
    earliest reminder first. [] is no reminders."""
    name = "reminder_minutes"
    if not isinstance(value, list):
        raise EventTypeError(name, "Must be a list of minutes, e.g. [1440, 60] (or [] for none).")
    if len(value) > MAX_REMINDERS:
        raise EventTypeError(name, f"At most {MAX_REMINDERS} reminders.")
    low, high = REMINDER_MINUTES_RANGE
    minutes = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise EventTypeError(name, "Each reminder must be a whole number of minutes.")
        if not low <= item <= high:
            raise EventTypeError(name, f"Each reminder must be between {low} and {high} minutes.")
        minutes.append(item)
    if len(set(minutes)) != len(minutes):
        raise EventTypeError(name, "Each reminder time may be given once.")
    return sorted(minutes, reverse=True)


def clean_fields(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Check `data` against the event type rules and return the cleaned values.

    Args:
        data: field name -> value, typed as JSON would give them.
        partial: True for an update (PATCH): only the given fields are checked.

    Raises:
        EventTypeError: an unknown, missing or invalid field.
    """
    for name in data:
        if name not in FIELDS:
            raise EventTypeError(name, "Unknown field.", code="unknown_field")
    if not partial:
        for name in REQUIRED:
            if name not in data or data[name] is None:
                raise EventTypeError(name, "This field is required.", code="missing_field")
    cleaned: dict[str, Any] = {}
    for name, value in data.items():
        if name == "title":
            cleaned[name] = _text(name, value, 120, required=True)
        elif name == "slug":
            slug = _text(name, value, 64, required=True).lower()
            if not SLUG_RE.match(slug):
                raise EventTypeError(name, "Use lowercase letters, digits and single hyphens.")
            cleaned[name] = slug
        elif name == "description":
            description = "" if value is None else value
            cleaned[name] = _text(name, description, 5000, required=False, multiline=True)
        elif name == "location":
            if not isinstance(value, str) or value not in LOCATIONS:
                raise EventTypeError(name, "Must be one of: " + ", ".join(LOCATIONS) + ".")
            cleaned[name] = value
        elif name in ("active", "requires_confirmation"):
            if not isinstance(value, bool):
                raise EventTypeError(name, "Must be true or false.")
            cleaned[name] = value
        elif name in OPTIONAL_INT_FIELDS:
            low, high = OPTIONAL_INT_FIELDS[name]
            cleaned[name] = None if value is None else _int(name, value, low, high)
        elif name == "reminder_minutes":
            cleaned[name] = _reminder_minutes(value)
        elif name == "questions":
            try:
                cleaned[name] = check_questions(value)
            except FieldError as error:
                raise EventTypeError(error.field, error.message) from None
        else:
            low, high, _default = INT_FIELDS[name]
            cleaned[name] = _int(name, value, low, high)
    return cleaned


def _check_limits(cleaned: Mapping[str, Any], event_type: EventType | None) -> None:
    """A week's limit must leave room for a full day, the two as they will be saved."""

    def will_be(name: str) -> int | None:
        if name in cleaned:
            return cleaned[name]
        return getattr(event_type, name) if event_type is not None else None

    per_day, per_week = will_be("max_per_day"), will_be("max_per_week")
    if per_day is not None and per_week is not None and per_week < per_day:
        raise EventTypeError(
            "max_per_week", f"Must be at least the daily limit ({per_day}), or empty."
        )


def save_event_type(
    expert: User, data: Mapping[str, Any], event_type: EventType | None = None
) -> EventType:
    """Create (event_type None) or update an event type of `expert`; the caller commits.

    Raises:
        EventTypeError: invalid input, or a slug the expert already uses (code "slug_taken").
    """
    cleaned = clean_fields(data, partial=event_type is not None)
    _check_limits(cleaned, event_type)
    slug = cleaned.get("slug")
    if slug is not None and (event_type is None or slug != event_type.slug):
        taken = db.session.scalar(
            sa.select(EventType.archived_at.is_not(None)).where(
                EventType.expert_id == expert.id, EventType.slug == slug
            )
        )
        if taken is not None:
            # An archived type keeps its slug: old links to it must not reach another type.
            message = (
                "An archived event type uses this slug: restore it, or pick another."
                if taken
                else "You already use this slug."
            )
            raise EventTypeError("slug", message, code="slug_taken")
    if event_type is None:
        event_type = EventType(
            expert=expert,
            location="zoom",
            description="",
            active=True,
            reminder_minutes=list(DEFAULT_REMINDER_MINUTES),
            requires_confirmation=False,
            questions=[],
            **{name: value for name, (_, _, value) in INT_FIELDS.items() if value is not None},
        )
        db.session.add(event_type)
    for name, value in cleaned.items():
        setattr(event_type, name, value)
    return event_type


def commit_event_type() -> None:
    """Commit what save_event_type did. A slug that a concurrent request took after its
    check is refused the same way.

    Raises:
        EventTypeError: the slug is taken (code "slug_taken"); nothing is saved.
    """
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise EventTypeError("slug", "You already use this slug.", code="slug_taken") from None


# What removing an event type does: a type never booked is deleted; a booked one is
# archived, since deleting it would delete its bookings (they cascade) and their history.
DELETE, ARCHIVE = "delete", "archive"


@dataclass(frozen=True)
class BookingCounts:
    """An event type's bookings, for deciding what removing it does."""

    # Ever booked (whatever the status or time).
    booked: bool = False
    # Confirmed or waiting for the expert, and not yet over (a meeting under way counts).
    upcoming: int = 0

    @property
    def removal(self) -> str | None:
        """DELETE, ARCHIVE, or None while a client still expects an upcoming meeting."""
        if self.upcoming:
            return None
        return ARCHIVE if self.booked else DELETE


def booking_counts(event_type_ids: Iterable[int], now: datetime) -> dict[int, BookingCounts]:
    """Each given event type's BookingCounts (one query), whatever its history: "ever
    booked" stops at the first booking found, and only the expert's confirmed and pending bookings
    starting from a longest meeting ago are counted (the (expert_id, status, start_at)
    index). Types without bookings are left out (their counts are BookingCounts())."""
    ids = list(event_type_ids)
    if not ids:
        return {}
    booked = sa.exists().where(Booking.event_type_id == EventType.id)
    upcoming = (
        sa.select(sa.func.count())
        .where(
            Booking.expert_id == EventType.expert_id,
            Booking.status.in_(Booking.BLOCKING),
            # Not over yet, so started at most the longest meeting ago.
            Booking.start_at > now - timedelta(minutes=MAX_DURATION_MINUTES),
            Booking.end_at > now,
            Booking.event_type_id == EventType.id,
        )
        .scalar_subquery()
    )
    rows = db.session.execute(
        sa.select(EventType.id, booked, upcoming).where(EventType.id.in_(ids))
    )
    return {
        event_type_id: BookingCounts(bool(ever), soon) for event_type_id, ever, soon in rows if ever
    }


def remove_event_type(event_type: EventType, *, now: datetime) -> str:
    """Delete the event type if it was never booked, otherwise archive it; commits.

    Runs in the serialized booking transaction under the expert's lock, so a booking that
    commits meanwhile is either counted here or refused (the type is no longer active), and
    a delete never takes a booking with it.

    Returns:
        DELETE or ARCHIVE: what was done.

    Raises:
        EventTypeError: an upcoming confirmed or pending booking exists (code
            "has_upcoming_bookings"), or the type is already gone (code "not_found");
            nothing changes.
        BookingBusy: the expert's lock was not free in time.
    """
    event_type_id, expert_id = event_type.id, event_type.expert_id
    with booking_transaction():
        lock_expert(expert_id)  # the booking operations' lock: removal and booking serialize
        event_type = db.session.get(EventType, event_type_id, populate_existing=True)
        if event_type is None or event_type.archived:
            raise EventTypeError("id", "No such event type.", code="not_found")
        counts = booking_counts([event_type_id], now).get(event_type_id, BookingCounts())
        if counts.removal is None:
            raise EventTypeError(
                "id",
                "This event type has upcoming bookings: cancel them, or wait until they are"
                " over, before you archive it (deactivating it takes no new bookings).",
                code="has_upcoming_bookings",
            )
        if counts.removal == DELETE:
            db.session.delete(event_type)
        else:
            event_type.active = False
            event_type.archived_at = now
    return counts.removal


def restore_event_type(event_type: EventType) -> None:
    """Bring an archived event type back, inactive (the expert switches it on when it
    should take bookings again); the caller commits."""
    event_type.archived_at = None
    event_type.active = False


def event_type_url(event_type: EventType, base_url: str) -> str:
    return f"{base_url}/{event_type.expert.username}/{event_type.slug}"


def event_type_payload(event_type: EventType, base_url: str) -> dict[str, Any]:
    """The API representation: id, url and every field."""
    payload = {"id": event_type.id, "url": event_type_url(event_type, base_url)}
    payload.update({name: getattr(event_type, name) for name in FIELDS})
    return payload
