"""Booking input, checked before any transaction starts: the booker's fields, an
Idempotency-Key, and the reason given for a cancellation or a decline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .accounts import AccountError, normalize_email
from .errors import FieldError
from .scheduling import is_valid_timezone
from .text import multiline

MAX_NAME = 100
MAX_NOTES = 2000
MAX_IDEMPOTENCY_KEY = 255


class BookingInputError(FieldError):
    """Bad booking input; `field` names it."""


@dataclass(frozen=True)
class BookingRequest:
    """Checked booking input."""

    start: datetime
    name: str
    email: str
    notes: str
    # The zone the booker picked the time in, if known.
    timezone: str = ""
    # The answers to the event type's questions as sent: checked in the booking's
    # transaction against the event type's questions as they are then.
    answers: Any = field(default_factory=dict)


def check_request(
    start: datetime,
    name: Any,
    email: Any,
    notes: Any = "",
    timezone: str = "",
    answers: Any = None,
) -> BookingRequest:
    """Validate booking input before any transaction starts (`answers` only in shape: the
    event type's questions are read in the booking's transaction).

    Raises:
        BookingInputError: a missing or invalid field.
    """
    if start.tzinfo is None:
        raise BookingInputError("start", "The time needs an offset, e.g. Z or +01:00.")
    if not isinstance(name, str):
        raise BookingInputError("name", "Please give your name.")
    # Control and invisible characters have no place in a name (they break mail headers and
    # calendar files); what is left must still be a name.
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if not name or not any(ch.isalnum() for ch in name):
        raise BookingInputError("name", "Please give your name.")
    if len(name) > MAX_NAME:
        raise BookingInputError("name", f"At most {MAX_NAME} characters.")
    if not isinstance(email, str) or len(email) > 254:
        raise BookingInputError("email", "Please give a valid email address.")
    try:
        email = normalize_email(email)
    except AccountError as error:
        raise BookingInputError("email", error.message) from None
    if notes is None:
        notes = ""
    if not isinstance(notes, str):
        raise BookingInputError("notes", "Must be text.")
    if len(notes) > MAX_NOTES:
        raise BookingInputError("notes", f"At most {MAX_NOTES} characters.")
    timezone = timezone if is_valid_timezone(timezone) else ""
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        raise BookingInputError("answers", "Must be an object of question id to answer.")
    return BookingRequest(utc_start(start), name, email, multiline(notes), timezone, answers)


def utc_start(start: datetime) -> datetime:
    """An aware start in UTC.

    Raises:
        BookingInputError: the offset takes it past the calendar's ends (field "start").
    """
    try:
        return start.astimezone(UTC)
    except OverflowError:  # an offset at the calendar's very ends
        raise BookingInputError("start", "That time is out of range.") from None


def check_idempotency_key(key: Any) -> str | None:
    if key is None or key == "":
        return None
    if not isinstance(key, str) or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise BookingInputError("Idempotency-Key", "At most 255 printable characters.")
    return key


def check_reason(reason: Any) -> str:
    """A cancellation's or a decline's reason, cleaned (None: none given).

    Raises:
        BookingInputError: not text, or over MAX_NOTES characters.
    """
    if reason is None:
        return ""
    if not isinstance(reason, str) or len(reason) > MAX_NOTES:
        raise BookingInputError("reason", f"Text of at most {MAX_NOTES} characters.")
    return multiline(reason)
