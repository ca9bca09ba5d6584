"""Notification emails with the calendar file attached.

Sent through SMTP when MAIL_SERVER is set, written to the log otherwise. Sending happens in
a background task after the commit, so a slow or broken mail server never delays or fails
a booking.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from flask import Flask, current_app, render_template

from .extensions import db, socketio
from .ics import calendar_file
from .models import Booking

log = logging.getLogger("expertbook.mail")

# kind -> (iCalendar METHOD, subject prefix)
KINDS = {
    "booked": ("REQUEST", "Booked"),
    "rescheduled": ("REQUEST", "Rescheduled"),
    "cancelled": ("CANCEL", "Cancelled"),
}


def subject_of(booking: Booking, kind: str) -> str:
    title, expert = booking.event_type.title, booking.expert.display_name
    return f"{KINDS[kind][1]}: {title} with {expert} and {booking.name}"


def build_messages(
    booking: Booking, kind: str, manage_url: str | None = None
) -> list[EmailMessage]:
    """One message for each party, each with a text/calendar part (METHOD per KINDS).

    `manage_url` is the guest's link (with its token) when the caller has it: the mail is
    how a guest finds the booking again. The expert's mail links to the booking's page."""
    method, _prefix = KINDS[kind]
    config = current_app.config
    expert = booking.expert
    subject = subject_of(booking, kind)
    messages = []
    for to, tz, is_expert in (
        (booking.email, booking.booker_timezone, False),
        (expert.email, expert.timezone, True),
    ):
        link = f"{config['BASE_URL']}/bookings/{booking.uid}"
        if not is_expert and booking.client_id is None:
            link = manage_url  # a guest has no account: only the tokened link opens it
        ics = calendar_file([booking], config["BASE_URL"], method=method, manage_url=link)
        context = dict(booking=booking, kind=kind, tz=tz, for_expert=is_expert, link=link)
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = config["MAIL_FROM"]
        message["To"] = to
        message.set_content(render_template("email/booking.txt", **context))
        message.add_alternative(render_template("email/booking.html", **context), subtype="html")
        message.add_attachment(
            ics,
            maintype="text",
            subtype="calendar",
            params={"method": method, "charset": "utf-8"},
            filename="invite.ics",
        )
        messages.append(message)
    return messages


def _deliver(app: Flask, booking_id: int, kind: str, manage_url: str | None) -> None:
    try:
        _build_and_send(app, booking_id, kind, manage_url)
    except Exception:  # noqa: BLE001 - a background task: log it, never lose it silently
        app.logger.exception("the %s mail for booking %s failed", kind, booking_id)
        if app.config.get("MAIL_SYNC"):
            raise


def _build_and_send(app: Flask, booking_id: int, kind: str, manage_url: str | None) -> None:
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        if booking is None:
            return
        messages = build_messages(booking, kind, manage_url)
        if not app.config["MAIL_SERVER"]:
            for message in messages:
                log.info("mail to %s: %s", message["To"], message["Subject"])
            return
        try:
            smtp_send(app.config, messages)
        except (OSError, smtplib.SMTPException):
            log.exception("could not send the %s mail for booking %s", kind, booking.uid)


def smtp_send(config, messages: list[EmailMessage]) -> None:
    """Send `messages` through the configured SMTP server, on one connection."""
    with smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=10) as smtp:
        if config["MAIL_USERNAME"]:
            smtp.starttls()
            smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
        for message in messages:
            smtp.send_message(message)


def send_booking_mail(booking: Booking, kind: str, manage_url: str | None = None) -> None:
    """Mail both parties about `booking` (kind: booked, rescheduled, cancelled), after commit;
    `manage_url` is the guest's tokened link, when known."""
    app = current_app._get_current_object()
    if not app.config["MAIL_SERVER"] and not app.config.get("MAIL_SYNC"):
        # No mail server: a log line, without building messages nobody receives (rendering
        # them cost more CPU than the booking itself).
        for to in (booking.email, booking.expert.email):
            log.info("mail to %s: %s", to, subject_of(booking, kind))
        return
    if app.config.get("MAIL_SYNC"):
        _deliver(app, booking.id, kind, manage_url)
    else:
        socketio.start_background_task(_deliver, app, booking.id, kind, manage_url)
