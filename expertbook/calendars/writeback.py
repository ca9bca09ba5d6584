"""Bookings written back to the expert's receiving calendar: created, moved, removed.

A booking change writes a "writeback" row into the outbox (when the expert has a receiving
calendar), in the change's transaction; the outbox worker then makes the calendar's copy
match the booking as it is at delivery (so a late retry never undoes a newer change), and
retries with growing pauses while the server is down. The worker delivers one booking's
write-backs in order. The copy has the booking's UID, so sync.read_remote recognises it and
it never blocks its own time.

A booking waiting for the expert's confirmation is not written (the request is in the
expert's mail and dashboard; their calendar gets the session once it is confirmed); a
declined one is removed like a cancelled one (a removal of a copy never written is harmless).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..ics import booking_uid, calendar_object
from ..models import Booking
from ..outbox.models import OutboxMessage
from ..outbox.queue import DeliveryError, handler, message_row
from . import remote, secrets
from .models import CalendarConnection, ConnectedCalendar

# Answers that say "later", not "never".
RETRYABLE_4XX = (408, 429)


def rows_for(
    booking: Booking, change: str, *, now: datetime, receiving: bool | None = None
) -> list[dict]:
    """A write-back row when the booking's expert has a receiving calendar (`receiving`:
    whether they do, when the caller has read it in its transaction); none for a new
    request, which is not written until it is confirmed."""
    if change == "requested":
        return []
    if receiving is None:
        receiving = db.session.execute(RECEIVING, {"expert_id": booking.expert_id}).first()
    if not receiving:
        return []
    return [
        message_row(
            OutboxMessage.WRITEBACK,
            now=now,
            event=change,
            booking_id=booking.id,
            expert_id=booking.expert_id,
        )
    ]


RECEIVING = (
    sa.select(ConnectedCalendar.id)
    .where(
        ConnectedCalendar.expert_id == sa.bindparam("expert_id"),
        ConnectedCalendar.writes.is_(True),
    )
    .limit(1)
)


@handler(OutboxMessage.WRITEBACK)
def deliver_writeback(message: OutboxMessage) -> int | None:
    """The worker's delivery: push the booking's current state. A 4xx answer other than
    408/429 will not change on retry (permanent); anything else is retried."""
    try:
        push(message.booking_id)
    except secrets.SecretUnreadable:
        raise DeliveryError(
            "The calendar's password can no longer be read; connect the calendar again.",
            permanent=True,
        ) from None
    except remote.RemoteError as error:
        status = getattr(error, "status", None)
        permanent = status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX
        raise DeliveryError(error.message, status_code=status, permanent=permanent) from None
    return None


def push(booking_id: int | None) -> None:
    """PUT the booking's current state to the expert's receiving calendar, or DELETE it when
    it is not (or not yet) confirmed: cancelled, declined, pending. Raises
    remote.RemoteError (the caller retries)."""
    booking = db.session.get(Booking, booking_id, populate_existing=True) if booking_id else None
    if booking is None:
        return
    row = db.session.execute(
        sa.select(ConnectedCalendar.url, CalendarConnection)
        .join(CalendarConnection, ConnectedCalendar.connection_id == CalendarConnection.id)
        .where(
            ConnectedCalendar.expert_id == booking.expert_id,
            ConnectedCalendar.writes.is_(True),
        )
    ).first()
    if row is None:
        db.session.commit()
        return
    calendar_url, connection = row
    base_url = current_app.config["BASE_URL"]
    uid = booking_uid(booking.uid, base_url)
    ics = calendar_object(booking, base_url)
    db.session.commit()  # no transaction stays open across the network call
    password = secrets.decrypt(connection.secret)
    allow_private = bool(current_app.config["ALLOW_PRIVATE_HOSTS"])
    if booking.status == Booking.CONFIRMED:
        remote.put_event(
            calendar_url,
            connection.username,
            password,
            uid=uid,
            ics=ics,
            allow_private=allow_private,
        )
    else:
        remote.delete_event(
            calendar_url, connection.username, password, uid=uid, allow_private=allow_private
        )
