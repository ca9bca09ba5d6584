"""Reading JSON input: a body that is an object, and fields of the right type."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from flask import request

from ..scheduling import UnknownTimeZone, zone
from .errors import ApiError


def json_object() -> dict[str, Any]:
    """The request body as a dict.

    Only a body sent as `Content-Type: application/json`: a web page can make its visitors'
    browsers send `text/plain` or a form to any site without asking, but not JSON.

    Raises:
        ApiError: 415 `unsupported_media_type` for another content type; 400 `invalid_json`
            when the body is not a JSON object, nesting too deep included; 422 when a field
            holds text no database can store (see storable).
    """
    if request.get_data() and not request.is_json:  # an empty body is simply not an object
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as JSON, with the header 'Content-Type: application/json'.",
        )
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # the parser gives up on deep nesting ([[[[...) this way
        raise ApiError(400, "invalid_json", "The JSON body nests too deeply.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    for key, value in body.items():
        key_ok = storable(key)
        if not key_ok or not storable(value):
            field = key if key_ok else "body"
            raise invalid(field, "Text may not contain NUL or unpaired surrogate characters.")
    return body


def storable(value: Any) -> bool:
    """False when `value` holds a string no database takes: a NUL (PostgreSQL refuses it in
    any query) or a lone surrogate, which JSON's \\uD800 escapes can make but UTF-8 cannot
    encode. A loop, not recursion: a body may nest as deep as the JSON parser allows."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or SURROGATE_RE.search(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


SURROGATE_RE = re.compile(r"[\ud800-\udfff]")


def invalid(field: str, message: str, code: str = "invalid_field") -> ApiError:
    return ApiError(422, code, message, field=field)


DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(value: Any, field: str) -> date:
    # Only YYYY-MM-DD: fromisoformat would also take week dates such as 2026-W48-1.
    if not isinstance(value, str) or not DAY_RE.fullmatch(value):
        raise invalid(field, "Use a date as YYYY-MM-DD.")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(field, "Not a real date (YYYY-MM-DD).") from None


def parse_instant(value: Any, field: str) -> datetime:
    """An ISO 8601 time with an offset (or Z)."""
    if not isinstance(value, str) or not 16 <= len(value) <= 40:
        raise invalid(field, "Use an ISO 8601 time with an offset, e.g. 2026-12-01T09:00:00Z.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(field, "Not a valid ISO 8601 time.") from None
    if parsed.tzinfo is None:
        raise invalid(field, "The time needs an offset, e.g. Z or +01:00.")
    return parsed


def parse_timezone(value: Any, field: str) -> str:
    try:
        zone(value)
    except UnknownTimeZone:
        raise invalid(field, "Unknown time zone; use an IANA name like Europe/Berlin.") from None
    return value
