"""Messages that did not get through: what each was, to whom, why and since when, as the
expert's dashboard and `flask check-invariants` show them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import Booking, User
from .models import OutboxMessage, WebhookEndpoint

MAIL_WHAT = {
    "booked": "Booking confirmation mail",
    "rescheduled": "New-time mail",
    "cancelled": "Cancellation mail",
    "requested": "Booking request mail",
    "confirmed": "Request confirmed mail",
    "declined": "Request declined mail",
}


@dataclass(frozen=True)
class Problem:
    """One message that did not get through, in words."""

    uid: str
    kind: str
    status: str
    what: str
    to: str
    last_error: str
    attempts: int
    created_at: datetime
    due_at: datetime
    expert: str  # the expert's username ("" for none)
    booking_uid: str | None


def minutes_in_words(minutes: int) -> str:
    """1440 -> "1 day", 120 -> "2 hours", 90 -> "90 minutes"."""
    for size, unit in ((1440, "day"), (60, "hour")):
        if minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{minutes} minutes"


def _what(message: OutboxMessage) -> str:
    if message.kind == OutboxMessage.MAIL:
        return MAIL_WHAT.get(message.event, "Mail")
    if message.kind == OutboxMessage.REMINDER:
        minutes = int(message.event) if message.event.isdigit() else None
        return f"Reminder mail ({minutes_in_words(minutes)} before)" if minutes else "Reminder"
    if message.kind == OutboxMessage.WEBHOOK:
        return f"Webhook {message.event}"
    if message.kind == OutboxMessage.WRITEBACK:
        return "Calendar write-back"
    return message.kind


def _to(message: OutboxMessage, booking: Booking | None, expert_email: str, url: str | None):
    if message.kind in (OutboxMessage.MAIL, OutboxMessage.REMINDER):
        payload = message.payload or {}
        if payload.get("role") == "expert":
            return expert_email or "the expert"
        return payload.get("to") or (booking.email if booking is not None else "the client")
    if message.kind == OutboxMessage.WEBHOOK:
        return url or "a removed webhook endpoint"
    if message.kind == OutboxMessage.WRITEBACK:
        return "the receiving calendar"
    return ""


def problems(*conditions, limit: int | None = None) -> list[Problem]:
    """The messages matching `conditions` (on OutboxMessage), newest first, described."""
    expert = aliased(User)
    query = (
        sa.select(OutboxMessage, Booking, WebhookEndpoint.url, expert.email, expert.username)
        .outerjoin(Booking, Booking.id == OutboxMessage.booking_id)
        .outerjoin(WebhookEndpoint, WebhookEndpoint.id == OutboxMessage.endpoint_id)
        .outerjoin(expert, expert.id == OutboxMessage.expert_id)
        .where(*conditions)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    found = []
    for message, booking, url, expert_email, username in db.session.execute(query):
        found.append(
            Problem(
                uid=message.uid,
                kind=message.kind,
                status=message.status,
                what=_what(message),
                to=_to(message, booking, expert_email or "", url),
                last_error=message.last_error or "",
                attempts=message.attempts,
                created_at=message.created_at,
                due_at=message.due_at,
                expert=username or "",
                booking_uid=booking.uid if booking is not None else None,
            )
        )
    return found


def failed_messages(expert_id: int, *, since: datetime, limit: int = 20) -> list[Problem]:
    """The expert's messages written since `since` that were given up (status failed):
    retried for the whole window, or refused for good by the receiver."""
    return problems(
        OutboxMessage.expert_id == expert_id,
        OutboxMessage.status == OutboxMessage.FAILED,
        OutboxMessage.created_at >= since,
        limit=limit,
    )
