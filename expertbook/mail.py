"""Mail: the one function that sends a message, and the booking mails the outbox delivers.

`send_email` sends through SMTP when MAIL_SERVER is set; without it, each mail is one log
line (`mail to=... subject=...`) and, outside production, a copy in a small in-process list
shown at /dev/mail. Booking mails are rows of the outbox (one per recipient, written with
the change), built at delivery from the booking as it is then.
"""

from __future__ import annotations

import logging
import re
import smtplib
from collections import deque
from datetime import datetime
from email.message import EmailMessage
from urllib.parse import urlsplit

from flask import current_app, render_template

from .extensions import db
from .ics import calendar_file
from .models import Booking, utcnow
from .outbox.models import OutboxMessage
from .outbox.queue import DeliveryError, handler, message_row

log = logging.getLogger("expertbook.mail")

# Seconds each SMTP step (connect, each command) may take.
SMTP_TIMEOUT = 10
# Mails kept for /dev/mail, newest first.
DEV_MAIL_KEPT = 50

# kind -> (iCalendar METHOD, subject prefix)
KINDS = {
    "booked": ("REQUEST", "Booked"),
    "rescheduled": ("REQUEST", "Rescheduled"),
    "cancelled": ("CANCEL", "Cancelled"),
}
CLIENT, EXPERT = "client", "expert"


# --- Sending -----------------------------------------------------------------------------------


def send_email(message: EmailMessage) -> int | None:
    """Send `message` (in the caller's thread; green under eventlet) and return the SMTP
    reply code; without MAIL_SERVER, log it (and keep it for /dev/mail) and return None.

    Raises:
        DeliveryError: the server could not be reached or refused the mail; `permanent`
            when it refused for good (a 5xx answer to the recipient or the data).
    """
    config = current_app.config
    if not config["MAIL_SERVER"]:
        log.info("mail to=%s subject=%s", message["To"], message["Subject"])
        if not config.get("PRODUCTION"):
            _keep_for_dev(message)
        return None
    try:
        with smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=SMTP_TIMEOUT) as smtp:
            if config["MAIL_USERNAME"]:
                smtp.starttls()
                smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        code, answer = next(iter(error.recipients.values()))
        raise _refused(code, answer) from None
    except smtplib.SMTPAuthenticationError as error:
        # The maintainer's setting, not the mail's fault: retried once it is fixed.
        raise DeliveryError(f"The mail server refused our login ({error.smtp_code}).") from None
    except smtplib.SMTPResponseException as error:
        raise _refused(error.smtp_code, error.smtp_error) from None
    except (OSError, smtplib.SMTPException) as error:
        reason = str(error) or type(error).__name__
        raise DeliveryError(f"The mail server could not be reached: {reason}") from None
    return 250


def _refused(code: int, answer: bytes | str) -> DeliveryError:
    if isinstance(answer, bytes):
        answer = answer.decode("utf-8", "replace")
    return DeliveryError(
        f"The mail server refused the mail ({code} {answer})"[:300],
        status_code=code,
        permanent=500 <= code < 600,
    )


# --- /dev/mail ---------------------------------------------------------------------------------

_LINK = re.compile(r"https?://[^\s<>\"')]+")


def _keep_for_dev(message: EmailMessage) -> None:
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    dev_mails(current_app).appendleft(
        {
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "sent_at": utcnow(),
            "text": text,
            "links": list(dict.fromkeys(_LINK.findall(text))),
        }
    )


def dev_mails(app) -> deque:
    """The last mails this process 'sent' without a mail server, newest first."""
    return app.extensions.setdefault("expertbook.dev_mail", deque(maxlen=DEV_MAIL_KEPT))


# --- Booking mails -----------------------------------------------------------------------------


def rows_for(
    booking: Booking, change: str, *, now: datetime, manage_url: str | None = None
) -> list[dict]:
    """One mail row for each party of `booking` about `change` (booked, rescheduled,
    cancelled). The guest's row keeps their tokened link: it is how a guest finds the
    booking again, and it cannot be made later (only its hash is stored)."""
    if change not in KINDS:
        return []
    guest = {"manage_url": manage_url} if manage_url and booking.client_id is None else {}
    common = dict(now=now, event=change, booking_id=booking.id, expert_id=booking.expert_id)
    return [
        message_row(OutboxMessage.MAIL, payload={"role": CLIENT, **guest}, **common),
        message_row(OutboxMessage.MAIL, payload={"role": EXPERT}, **common),
    ]


def subject_of(booking: Booking, kind: str) -> str:
    title, expert = booking.event_type.title, booking.expert.display_name
    return f"{KINDS[kind][1]}: {title} with {expert} and {booking.name}"


def message_id(uid: str) -> str:
    """A mail's stable Message-ID: the outbox row's uid at the host of BASE_URL."""
    host = urlsplit(current_app.config["BASE_URL"]).hostname or "localhost"
    return f"<{uid}@{host}>"


def booking_mail(
    booking: Booking, kind: str, role: str, *, manage_url: str | None = None, uid: str
) -> EmailMessage:
    """The mail to one party (`role`: client or expert) about `booking`, with a
    text/calendar part (METHOD per KINDS). The guest's mail links with `manage_url`; the
    others link to the booking's page, which they open signed in."""
    method, _prefix = KINDS[kind]
    config = current_app.config
    is_expert = role == EXPERT
    if is_expert:
        to, tz = booking.expert.email, booking.expert.timezone
    else:
        to, tz = booking.email, booking.booker_timezone
    link = f"{config['BASE_URL']}/bookings/{booking.uid}"
    if not is_expert and booking.client_id is None:
        link = manage_url  # a guest has no account: only the tokened link opens it
    ics = calendar_file([booking], config["BASE_URL"], method=method, manage_url=link)
    context = dict(booking=booking, kind=kind, tz=tz, for_expert=is_expert, link=link)
    message = EmailMessage()
    message["Subject"] = subject_of(booking, kind)
    message["From"] = config["MAIL_FROM"]
    message["To"] = to
    message["Message-ID"] = message_id(uid)
    message.set_content(render_template("email/booking.txt", **context))
    message.add_alternative(render_template("email/booking.html", **context), subtype="html")
    message.add_attachment(
        ics,
        maintype="text",
        subtype="calendar",
        params={"method": method, "charset": "utf-8"},
        filename="invite.ics",
    )
    return message


@handler(OutboxMessage.MAIL)
def deliver_booking_mail(message: OutboxMessage) -> int | None:
    """The worker's delivery of one booking mail: built from the booking as it is now."""
    booking = db.session.get(Booking, message.booking_id) if message.booking_id else None
    if booking is None or message.event not in KINDS:
        return None  # the booking is gone (its expert deleted it): nothing left to say
    payload = message.payload or {}
    mail = booking_mail(
        booking,
        message.event,
        payload.get("role", CLIENT),
        manage_url=payload.get("manage_url"),
        uid=message.uid,
    )
    db.session.commit()  # no transaction stays open across the network call
    return send_email(mail)
