"""The booking mails the outbox delivers: one row per party of a booking change (written
with the change), each mail built at delivery from the booking as it is then, with the
calendar invitation of the change once the booking is confirmed.

The worker finds the delivery here by its kind (outbox/worker.load_handlers imports this
module); the sending itself is mail.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import Message

from flask import current_app, render_template

from .bookings.links import decision_url
from .bookings.manage_links import guest_manage_url
from .ics import calendar_file
from .mail import Builder, Built, deliver_mails, message_id, mime_mail
from .models import Booking
from .outbox.models import OutboxMessage
from .outbox.queue import DeliveryError, Outcome, batch_handler, handler, message_row
from .questions import booking_answers

# kind -> (iCalendar METHOD, or None for a mail without a calendar part; subject prefix)
KINDS = {
    "booked": ("REQUEST", "Booked"),
    "rescheduled": ("REQUEST", "Rescheduled"),
    "cancelled": ("CANCEL", "Cancelled"),
    # A request waiting for the expert: nothing goes into a calendar until it is confirmed.
    "requested": (None, "Request received"),
    "confirmed": ("REQUEST", "Confirmed"),
    "declined": (None, "Declined"),
}
CLIENT, EXPERT = "client", "expert"
# Who is told of each kind: both parties, but of a decline only the booker (the expert
# declined it, or let it lapse; their dashboard says so).
RECIPIENTS = {"declined": ("client",)}
# The expert's subject where it is not the booker's.
EXPERT_PREFIX = {"requested": "Please confirm"}


def rows_for(
    booking: Booking, change: str, *, now: datetime, manage_url: str | None = None
) -> list[dict]:
    """One mail row for each party of `booking` about `change` (booked, rescheduled,
    cancelled, requested, confirmed; a decline only to the booker). The guest's row keeps
    their tokened link until it is sent: it is how a guest finds the booking again. It is
    the caller's `manage_url`, else the one made again from the booking
    (bookings/manage_links.py); a link of a booking made before tokens were derived comes
    only from the caller (outbox.events recovers it from the booking's pending reminders)."""
    if change not in KINDS:
        return []
    if booking.client_id is None:
        manage_url = manage_url or guest_manage_url(booking)
    guest = {"manage_url": manage_url} if manage_url and booking.client_id is None else {}
    common = dict(now=now, event=change, booking_id=booking.id, expert_id=booking.expert_id)
    roles = RECIPIENTS.get(change, (CLIENT, EXPERT))
    return [
        message_row(
            OutboxMessage.MAIL, payload={"role": role, **(guest if role == CLIENT else {})},
            **common,
        )
        for role in roles
    ]  # fmt: skip


def without_invite(rows: list[dict]) -> list[dict]:
    """`rows` (a booking change's outbox rows), their mails marked to carry no calendar
    part: for a change to a request cancelled while still pending, whose parties never got
    an invitation (no mail carries one before the confirmation), so there is nothing in
    their calendars to cancel. Other rows are left as they are."""
    for row in rows:
        if row["kind"] == OutboxMessage.MAIL:
            row["payload"] = {**row["payload"], "invite": False}
    return rows


def subject_of(booking: Booking, kind: str, role: str = CLIENT) -> str:
    title, expert = booking.event_type.title, booking.expert.display_name
    prefix = EXPERT_PREFIX.get(kind, KINDS[kind][1]) if role == EXPERT else KINDS[kind][1]
    return f"{prefix}: {title} with {expert} and {booking.name}"


def booking_mail(
    booking: Booking,
    kind: str,
    role: str,
    *,
    manage_url: str | None = None,
    uid: str,
    invites: dict | None = None,
    invite: bool = True,
) -> Message:
    """The mail to one party (`role`: client or expert) about `booking`, with a
    text/calendar part (METHOD per KINDS; none for a request or a decline, nor for any mail
    about a booking still pending, such as a request moved to another time). The guest's
    mail links with `manage_url`; the others link to the booking's page, which they open
    signed in. The expert's mails list the booker's answers, and the expert's mail about a
    pending request is the request, with one-click confirm and decline links. `invites`:
    a dict the caller keeps across the mails of one batch, so both parties' identical
    invite is built once. `invite` False: no calendar part whatever the kind (the
    cancellation of a request that was still pending: see without_invite)."""
    method = None if booking.is_pending or not invite else KINDS[kind][0]
    config = current_app.config
    is_expert = role == EXPERT
    if is_expert:
        to, tz = booking.expert.email, booking.expert.timezone
    else:
        to, tz = booking.email, booking.booker_timezone
    link = f"{config['BASE_URL']}/bookings/{booking.uid}"
    if not is_expert and booking.client_id is None:
        link = manage_url  # a guest has no account: only the tokened link opens it
    invites = {} if invites is None else invites
    key = (booking.id, booking.sequence, method, link)
    if method is not None and key not in invites:
        invites[key] = calendar_file([booking], config["BASE_URL"], method=method, manage_url=link)
    context = dict(
        booking=booking, kind=kind, tz=tz, for_expert=is_expert, link=link, invite=bool(method)
    )
    if is_expert:
        context.update(_expert_context(booking))
    is_request = kind == "requested" or (is_expert and booking.is_pending)
    template = "email/request" if is_request else "email/booking"
    return mime_mail(
        subject=subject_of(booking, kind, role),
        to=to,
        message_id=message_id(uid),
        text=render_template(f"{template}.txt", **context),
        html=render_template(f"{template}.html", **context),
        calendar=invites.get(key),
        method=method,
    )


def _expert_context(booking: Booking) -> dict:
    """What only the expert's mail shows: the booker's answers and, for a request still
    pending, the signed one-click links to confirm or decline it."""
    context = {"answers": booking_answers(booking)}
    if booking.is_pending and booking.confirm_by is not None:
        context["confirm_url"] = decision_url(booking, "confirm")
        context["decline_url"] = decision_url(booking, "decline")
    return context


def _build_booking_mail(invites: dict) -> Builder:
    def build(message: OutboxMessage, booking: Booking | None) -> Built:
        if booking is None or message.event not in KINDS:
            return None  # the booking is gone (its expert deleted it): nothing left to say
        payload = message.payload or {}
        return booking_mail(
            booking,
            message.event,
            payload.get("role", CLIENT),
            manage_url=payload.get("manage_url"),
            uid=message.uid,
            invites=invites,
            invite=payload.get("invite", True),
        )

    return build


@batch_handler(OutboxMessage.MAIL)
def deliver_booking_mails(messages: Sequence[OutboxMessage]) -> list[Outcome]:
    """The worker's delivery of a batch of booking mails, each built from its booking as it
    is now, sent over one SMTP connection."""
    return deliver_mails(messages, _build_booking_mail({}))


@handler(OutboxMessage.MAIL)
def deliver_booking_mail(message: OutboxMessage) -> int | None:
    """The delivery of one booking mail (a batch of one)."""
    (outcome,) = deliver_booking_mails([message])
    if isinstance(outcome, DeliveryError):
        raise outcome
    return outcome
