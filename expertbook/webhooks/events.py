"""What a webhook says: the events an endpoint can subscribe to, and the outbox rows a
booking change (or a test) causes.

The body is built once, when the row is written, and stored in the row: every retry sends
the same bytes, so the signature and the receiver's duplicate check see one delivery.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from flask import current_app, has_request_context

from ..bookings.payloads import booking_payload
from ..extensions import db
from ..models import Booking
from ..outbox.models import OutboxMessage, WebhookEndpoint
from ..outbox.queue import message_row
from ..questions import booking_answers
from ..scheduling import iso_z

CREATED = "booking.created"
RESCHEDULED = "booking.rescheduled"
CANCELLED = "booking.cancelled"
# A booking of an event type that requires confirmation: made pending, then answered.
REQUESTED = "booking.requested"
CONFIRMED = "booking.confirmed"
DECLINED = "booking.declined"
# What an endpoint may subscribe to, in the order forms and answers list them.
EVENTS = (CREATED, RESCHEDULED, CANCELLED, REQUESTED, CONFIRMED, DECLINED)
# The events whose body says why ("reason": the canceller's or the expert's words, the
# deadline's for a request declined unanswered, "" when none was given).
WITH_REASON = (CANCELLED, DECLINED)
# The test event ("Send test event"): sent to one endpoint whatever it subscribed to.
PING = "ping"

# booking.py's change -> the event it announces.
EVENT_OF_CHANGE = {
    "booked": CREATED,
    "rescheduled": RESCHEDULED,
    "cancelled": CANCELLED,
    "requested": REQUESTED,
    "confirmed": CONFIRMED,
    "declined": DECLINED,
}


def rows_for(
    booking: Booking,
    change: str,
    *,
    now: datetime,
    endpoints: list[tuple[int, list[str]]] | None = None,
) -> list[dict]:
    """The outbox rows announcing `change` of `booking`: one per endpoint of its expert
    subscribed to the event (none without such endpoints: one indexed query, no more).
    `endpoints`: the expert's (id, events), when the caller has read them in its transaction."""
    event = EVENT_OF_CHANGE[change]
    if endpoints is None:
        endpoints = db.session.execute(
            sa.select(WebhookEndpoint.id, WebhookEndpoint.events).where(
                WebhookEndpoint.expert_id == booking.expert_id
            )
        ).all()
    wanted = [endpoint_id for endpoint_id, events in endpoints if event in (events or [])]
    if not wanted:
        return []
    shown = _booking_shown(booking)
    kind = booking.event_type
    event_type = {"id": kind.id, "slug": kind.slug, "title": kind.title}
    # The expert's own endpoint: it gets the answers the booking page asked, as mails do.
    fields = {"event_type": event_type, "answers": answers_shown(booking)}
    if event in WITH_REASON:
        fields["reason"] = booking.cancel_reason or ""
    rows = []
    for endpoint_id in wanted:
        row = message_row(
            OutboxMessage.WEBHOOK,
            now=now,
            event=event,
            booking_id=booking.id,
            expert_id=booking.expert_id,
            endpoint_id=endpoint_id,
        )
        body = body_text(row["uid"], event, now, booking=shown, **fields)
        row["payload"] = {"body": body}
        rows.append(row)
    return rows


def ping_row(endpoint: WebhookEndpoint, *, now: datetime) -> dict:
    """The outbox row of a test delivery to `endpoint`."""
    row = message_row(
        OutboxMessage.WEBHOOK,
        now=now,
        event=PING,
        expert_id=endpoint.expert_id,
        endpoint_id=endpoint.id,
    )
    webhook = {"id": endpoint.id, "url": endpoint.url, "events": list(endpoint.events)}
    row["payload"] = {"body": body_text(row["uid"], PING, now, webhook=webhook)}
    return row


def body_text(uid: str, event: str, now: datetime, **fields) -> str:
    """The delivery's JSON body, as sent: `{"id", "event", "created_at", ...fields}`."""
    body = {"id": uid, "event": event, "created_at": iso_z(now), **fields}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def answers_shown(booking: Booking) -> list[dict[str, str]]:
    """The booker's answers as `[{"question": label, "answer": text}]`, in the event type's
    question order ("Yes"/"No" for a checkbox; [] when there are none)."""
    return [{"question": label, "answer": text} for label, text in booking_answers(booking)]


def _booking_shown(booking: Booking) -> dict:
    """The booking as the API shows it (links absolute, never the guest's manage token).

    Its links are built with url_for, which needs a request; a change made outside one
    (a CLI command, a worker) gets a stand-in, since the links start with BASE_URL anyway."""
    if has_request_context():
        return booking_payload(booking)
    with current_app.test_request_context():
        return booking_payload(booking)
