"""What a booking change says, and to whom: every message it causes, written into the
outbox in the change's own transaction (booking.py calls `booking_changed` before commit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app

from ..models import Booking
from .queue import enqueue

# A booking change: "booked", "rescheduled", "cancelled"; and for an event type that requires
# the expert's confirmation, "requested" (a new pending booking), then "confirmed" or
# "declined" (by the expert, or by its deadline passing).
CHANGES = ("booked", "rescheduled", "cancelled", "requested", "confirmed", "declined")
# The changes that create a booking: it has no reminders yet to cancel.
NEW = ("booked", "requested")


def booking_changed(
    booking: Booking, change: str, *, now: datetime, manage_url: str | None = None
) -> None:
    """Enqueue the mails, reminders, webhook deliveries and calendar write-back that follow
    from `change` of `booking`, inside the caller's transaction. `manage_url` is the guest's
    tokened link when the caller has it (the booking's creation, and a guest acting through
    it); otherwise, after the creation, the one the pending reminders carried is used."""
    enqueue(booking_messages(booking, change, now=now, manage_url=manage_url))


def booking_messages(
    booking: Booking,
    change: str,
    *,
    now: datetime,
    manage_url: str | None = None,
    known: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The outbox rows of booking_changed, for a caller that writes them itself.
    `known` holds what the caller read already in its transaction, so it is not asked
    again: "webhook_endpoints" [(id, events)] and "receiving_calendar" (bool) of the expert."""
    from .. import booking_mail, reminders, webhooks
    from ..calendars import writeback

    if not current_app.config["OUTBOX_ENABLED"]:  # benchmarks' "without the outbox"
        return []
    known = known or {}
    if change not in NEW:
        # Before any row is made: the booking's pending reminders are for a time (or a
        # session) that is no longer, and the guest's link they carried is the only copy
        # when the expert made the change; the guest's mail needs it as much as the new
        # reminders do.
        recovered = reminders.cancel_pending(booking.id)
        manage_url = manage_url or recovered
    rows = []
    rows += booking_mail.rows_for(booking, change, now=now, manage_url=manage_url)
    rows += reminders.rows_for(
        booking, change, now=now, manage_url=manage_url, pending_cancelled=True
    )
    rows += webhooks.rows_for(booking, change, now=now, endpoints=known.get("webhook_endpoints"))
    rows += writeback.rows_for(booking, change, now=now, receiving=known.get("receiving_calendar"))
    return rows
