"""Reminder mails before a session: one outbox message per participant and reminder time.

A confirmed booking gets, for each of its event type's `reminder_minutes` m, a "reminder"
message to the client and one to the expert, due at start - m (those already past when the
booking is made are left out). A reschedule cancels the pending ones and makes new ones for
the new time; a cancellation cancels them. A booking waiting for the expert's confirmation
gets none until it is confirmed (then they are made as for a new booking); a declined one
none at all. A guest's reminder rows carry their manage link (made again from the booking
when the change's caller does not have it: bookings/manage_links.py). The messages are
written by `rows_for` in the booking change's own transaction (outbox.events) and delivered
by the outbox worker, which calls `deliver_reminder` when they are due.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import Message
from typing import Any

import sqlalchemy as sa
from flask import current_app, render_template

from . import mail
from .bookings.manage_links import guest_manage_url
from .database import booking_transaction
from .extensions import db
from .models import Booking, utcnow
from .outbox import OutboxMessage, handler, message_row
from .outbox.queue import DeliveryError, Outcome, batch_handler, without_manage_url
from .scheduling import is_valid_timezone, zone
from .templating import localtime

log = logging.getLogger("expertbook.reminders")

CLIENT, EXPERT = "client", "expert"

_MESSAGES = OutboxMessage.__table__


def rows_for(
    booking: Booking,
    change: str,
    *,
    now: datetime,
    manage_url: str | None = None,
    pending_cancelled: bool = False,
) -> list[dict[str, Any]]:
    """The reminder messages that follow from `change` ("booked", "rescheduled",
    "cancelled", "requested", "confirmed", "declined") of `booking`, inside the change's
    transaction. Only a confirmed booking has reminders.

    A new booking costs no query when its event type and expert are loaded; any other
    change first cancels the booking's pending reminders in one UPDATE, since they were
    made for a time that is no longer (or a session that is no longer on).

    Args:
        booking: the booking as it is after the change.
        change: what happened to it.
        now: the current instant; reminders due before it are left out.
        manage_url: the guest's tokened link, when the caller has it. On a reschedule
            without it, the link the cancelled reminders carried is kept.
        pending_cancelled: the caller has cancelled the pending reminders already (with
            cancel_pending, taking their link: outbox.events does, for the mails too).

    Returns:
        Rows for outbox.enqueue.
    """
    if change not in ("booked", "requested") and not pending_cancelled:
        recovered = cancel_pending(booking.id)  # always: they are for a time no longer
        manage_url = manage_url or recovered
    if not booking.is_confirmed:
        return []
    return reminder_rows(booking, now=now, manage_url=manage_url)


# The event of a row written by earlier versions for a guest's request, never sent: it only
# kept the guest's link while the request waited (a link that cannot be made again from the
# booking). Such rows still in a database are cancelled by the request's answer (whose
# messages take their link through cancel_pending) or dropped unsent after the session.
LINK_KEEPER = "link"


def reminder_rows(
    booking: Booking, *, now: datetime, manage_url: str | None = None
) -> list[dict[str, Any]]:
    """One row per participant per reminder time of the booking's event type, due at
    start - minutes (exact UTC arithmetic: "a day before" is 24 hours before, across a
    change of the clocks too); reminders whose time has passed are left out."""
    rows = []
    start = booking.start_at.isoformat()
    if booking.client_id is None:  # a guest: their link, made again when not at hand
        manage_url = manage_url or guest_manage_url(booking)
    for minutes in booking.event_type.reminder_minutes or ():
        due_at = booking.start_at - timedelta(minutes=minutes)
        if due_at <= now:
            continue
        for role, to in ((CLIENT, booking.email), (EXPERT, booking.expert.email)):
            payload = {"role": role, "to": to, "start": start}
            if role == CLIENT and booking.client_id is None and manage_url:
                payload["manage_url"] = manage_url  # a guest's only key to the booking
            rows.append(
                message_row(
                    OutboxMessage.REMINDER,
                    now=now,
                    due_at=due_at,
                    event=str(minutes),
                    booking_id=booking.id,
                    expert_id=booking.expert_id,
                    payload=payload,
                )
            )
    return rows


def cancel_pending(booking_id: int) -> str | None:
    """Mark the booking's pending reminders cancelled and drop the guest's manage link
    they carried; return that link (for the reminders of a new time), if any."""
    pending = (
        _MESSAGES.c.booking_id == booking_id,
        _MESSAGES.c.kind == OutboxMessage.REMINDER,
        _MESSAGES.c.status == OutboxMessage.PENDING,
    )
    update = sa.update(_MESSAGES).where(*pending)
    update = update.values(status=OutboxMessage.CANCELLED, claimed_until=None)
    read = (_MESSAGES.c.id, _MESSAGES.c.payload)
    if db.session.get_bind().dialect.update_returning:
        rows = db.session.execute(update.returning(*read)).all()
    else:  # SQLite before 3.35
        rows = db.session.execute(sa.select(*read).where(*pending)).all()
        db.session.execute(update)
    linked = [(row_id, payload) for row_id, payload in rows if (payload or {}).get("manage_url")]
    if not linked:
        return None
    db.session.execute(
        sa.update(_MESSAGES)
        .where(_MESSAGES.c.id == sa.bindparam("row_id"))
        .values(payload=sa.bindparam("scrubbed")),
        [{"row_id": row_id, "scrubbed": without_manage_url(p)} for row_id, p in linked],
    )
    return linked[0][1]["manage_url"]


def why_not_sent(booking: Booking | None, message: OutboxMessage, now: datetime) -> str | None:
    """Why the reminder `message` must not be sent now, or None when it should be."""
    if booking is None:
        return "the booking no longer exists"
    if message.event == LINK_KEEPER:
        return "it only kept the guest's link while the request waited"
    if not booking.is_confirmed:
        return f"the booking is {booking.status}"
    if _start_of(message) != booking.start_at:
        return f"the booking moved to {booking.start_at.isoformat()}"
    if booking.start_at <= now:
        return "the session has already started"
    return None


def _start_of(message: OutboxMessage) -> datetime | None:
    """The start the reminder was made for (None when the row does not say)."""
    try:
        return datetime.fromisoformat((message.payload or {})["start"])
    except (KeyError, TypeError, ValueError):
        return None


def _build_reminder(now: datetime) -> mail.Builder:
    def build(message: OutboxMessage, booking: Booking | None) -> mail.Built:
        reason = why_not_sent(booking, message, now)
        if reason is None:
            return reminder_mail(booking, message, now=now)
        log.info("reminder %s of booking %s not sent: %s", message.uid, message.booking_id, reason)
        _mark_not_sent(message, reason)
        return None

    return build


@batch_handler(OutboxMessage.REMINDER)
def deliver_reminders(messages: Sequence[OutboxMessage]) -> list[Outcome]:
    """Send the reminders `messages` (called by the outbox worker, outside any transaction),
    their bookings read afresh in one query, the mails over one SMTP connection.

    A reminder of a booking that was cancelled or moved since (or whose session has begun,
    after a long outage) sends nothing; the row says why (status cancelled, "not sent: ..."
    as its last error) and so does the log. One outcome per message: the mail server's
    reply code, or the DeliveryError it met (the worker retries)."""
    return mail.deliver_mails(messages, _build_reminder(utcnow()))


@handler(OutboxMessage.REMINDER)
def deliver_reminder(message: OutboxMessage) -> int | None:
    """Send one reminder (see deliver_reminders); raises what mail.send_email raises."""
    (outcome,) = deliver_reminders([message])
    if isinstance(outcome, DeliveryError):
        raise outcome
    return outcome


def _mark_not_sent(message: OutboxMessage, reason: str) -> None:
    """Record on the row that it was dropped, and why; the worker leaves a row that is no
    longer pending as it is."""
    with booking_transaction():
        db.session.execute(
            sa.update(_MESSAGES)
            .where(_MESSAGES.c.id == message.id, _MESSAGES.c.status == OutboxMessage.PENDING)
            .values(
                status=OutboxMessage.CANCELLED,
                last_error=f"not sent: {reason}",
                claimed_until=None,
                payload=without_manage_url(message.payload or {}),
            )
        )


def reminder_mail(booking: Booking, message: OutboxMessage, *, now: datetime) -> Message:
    """The reminder mail for the participant `message` is addressed to, in their zone: the
    client's (booker_timezone) or the expert's."""
    config = current_app.config
    expert = booking.expert
    for_expert = message.payload.get("role") == EXPERT
    to = expert.email if for_expert else booking.email
    tz = expert.timezone if for_expert else booking.booker_timezone
    tz = tz if is_valid_timezone(tz) else "UTC"
    other = booking.name if for_expert else expert.display_name
    link = f"{config['BASE_URL']}/bookings/{booking.uid}"
    if not for_expert and booking.client_id is None:
        link = message.payload.get("manage_url")  # a guest has no account: only its token
    when = starts_when(booking.start_at, tz, now)
    context = dict(booking=booking, tz=tz, other=other, when=when, link=link)
    return mail.mime_mail(
        subject=f"Reminder: {booking.event_type.title} with {other} {when}",
        to=to,
        # Stable across retries: a receiver drops a second copy.
        message_id=mail.message_id(message.uid),
        text=render_template("email/reminder.txt", **context),
        html=render_template("email/reminder.html", **context),
    )


def starts_when(start: datetime, tz: str, now: datetime) -> str:
    """ "today at 10:00 (Europe/Berlin)", "tomorrow at ...", "on Mon 27 Oct at ...", the
    day counted in the reader's zone `tz`."""
    days = (start.astimezone(zone(tz)).date() - now.astimezone(zone(tz)).date()).days
    if days == 0:
        day = "today"
    elif days == 1:
        day = "tomorrow"
    else:
        day = "on " + localtime(start, tz, "%a %d %b")
    return f"{day} at {localtime(start, tz, '%H:%M')} ({tz})"
