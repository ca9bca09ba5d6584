"""What a booking change says, and to whom: every message it causes, written into the
outbox in the change's own transaction (booking.py calls `booking_changed` before commit)."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from ..models import Booking
from .queue import enqueue

# A booking change: "booked", "rescheduled", "cancelled".
CHANGES = ("booked", "rescheduled", "cancelled")


def booking_changed(
    booking: Booking, change: str, *, now: datetime, manage_url: str | None = None
) -> None:
    """Enqueue the mails, reminders, webhook deliveries and calendar write-back that follow
    from `change` of `booking`, inside the caller's transaction. `manage_url` is the guest's
    tokened link when the caller has it (only the booking's creation does)."""
    from .. import mail, reminders, webhooks
    from ..calendars import writeback

    if not current_app.config["OUTBOX_ENABLED"]:  # benchmarks' "without the outbox"
        return
    rows = []
    rows += mail.rows_for(booking, change, now=now, manage_url=manage_url)
    rows += reminders.rows_for(booking, change, now=now, manage_url=manage_url)
    rows += webhooks.rows_for(booking, change, now=now)
    rows += writeback.rows_for(booking, change, now=now)
    enqueue(rows)
