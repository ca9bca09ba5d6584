"""Mail: the functions that send messages, and the booking mails the outbox delivers.

`send_email` sends one message through SMTP when MAIL_SERVER is set; `send_emails` sends
several over one connection (the worker's batches). Without MAIL_SERVER, each mail is one
log line (`mail to=... subject=...`) and, outside production, a copy in a small in-process
list shown at /dev/mail. Booking mails are rows of the outbox (one per recipient, written
with the change), built at delivery from the booking as it is then.

Booking and reminder mails are built with the email package's compat32 classes
(`email.mime`): they cost a sixth of an `EmailMessage`, whose every header is parsed
through the header registry, and a worker builds thousands.
"""

from __future__ import annotations

import logging
import re
import secrets
import smtplib
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app, render_template
from sqlalchemy.orm import joinedload

from .extensions import db
from .ics import calendar_file
from .models import Booking, utcnow
from .outbox.models import OutboxMessage
from .outbox.queue import (
    DeliveryError,
    LeaseRunningOut,
    Outcome,
    batch_handler,
    handler,
    lease_running_out,
    message_row,
)

log = logging.getLogger("expertbook.mail")

# Seconds each SMTP step (connect, each command) may take.
SMTP_TIMEOUT = 10
# Mails kept for /dev/mail, newest first.
DEV_MAIL_KEPT = 50
# A text part's lines must stay under SMTP's 998 octets to go as they are (7bit).
_LONGEST_7BIT_LINE = 900

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


# --- Sending -----------------------------------------------------------------------------------


def send_email(message: Message) -> int | None:
    """Send `message` (in the caller's thread; green under eventlet) and return the SMTP
    reply code; without MAIL_SERVER, log it (and keep it for /dev/mail) and return None.

    Raises:
        DeliveryError: the server could not be reached or refused the mail; `permanent`
            when it refused for good (a 5xx answer to the recipient or the data).
    """
    (outcome,) = send_emails([message])
    if isinstance(outcome, DeliveryError):
        raise outcome
    return outcome


def send_emails(messages: Sequence[Message]) -> list[int | None | DeliveryError]:
    """Send `messages` one after the other over one SMTP connection: each one's reply code
    (None without MAIL_SERVER) or the DeliveryError it met. A connection the server dropped
    is opened again once; when the server cannot be reached at all, the messages not sent
    yet fail with that error at once, so a server that is down costs one attempt a batch,
    not one a mail. In a worker whose claim on them is running out, the mails not begun
    yet are not sent (LeaseRunningOut): the worker releases them for its next pass."""
    config = current_app.config
    if not config["MAIL_SERVER"]:
        for message in messages:
            log.info("mail to=%s subject=%s", message["To"], message["Subject"])
            if not config.get("PRODUCTION"):
                _keep_for_dev(message)
        return [None] * len(messages)
    outcomes: list[int | None | DeliveryError] = []
    with SmtpConnection(config) as smtp:
        for index, message in enumerate(messages):
            if index and lease_running_out():
                outcomes.extend(LeaseRunningOut() for _ in messages[index:])
                break
            try:
                outcomes.append(smtp.send(message))
            except DeliveryError as error:
                outcomes.append(error)
            time.sleep(0)  # under eventlet: let requests run between two mails
    return outcomes


class SmtpConnection:
    """One conversation with the mail server (connect, STARTTLS and login when configured),
    kept open for several mails and closed with QUIT at the end of the `with` block."""

    def __init__(self, config):
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        self._unreachable: DeliveryError | None = None

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def send(self, message: Message) -> int:
        """Send one message; 250, or DeliveryError (see send_email)."""
        if self._unreachable is not None:
            raise self._unreachable
        reused = self._smtp is not None
        try:
            return self._send(message)
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            self.close()
            if not reused:
                raise self._give_up(error) from None
        # The server ended a connection we had used before (an idle timeout, a limit of
        # mails per connection): once more on a new one.
        try:
            return self._send(message)
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            self.close()
            raise self._give_up(error) from None

    def _give_up(self, error: BaseException) -> DeliveryError:
        """The server cannot be talked to: this mail and the rest fail with `error`."""
        self._unreachable = _unreachable(error)
        return self._unreachable

    def _send(self, message: Message) -> int:
        if self._smtp is None:
            self._smtp = self._open()
        try:
            self._smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            # smtplib has reset the transaction: the connection goes on.
            code, answer = next(iter(error.recipients.values()))
            raise _refused(code, answer) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            raise _refused(error.smtp_code, error.smtp_error) from None
        except smtplib.SMTPResponseException as error:
            self.close()
            raise _refused(error.smtp_code, error.smtp_error) from None
        except smtplib.SMTPException as error:
            if isinstance(error, smtplib.SMTPServerDisconnected):
                raise
            self.close()
            reason = str(error) or type(error).__name__
            raise DeliveryError(f"The mail server failed: {reason}") from None
        return 250

    def _open(self) -> smtplib.SMTP:
        config = self.config
        try:
            smtp = smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=SMTP_TIMEOUT)
        except (OSError, smtplib.SMTPException) as error:
            raise self._give_up(error) from None
        try:
            if config["MAIL_USERNAME"]:
                smtp.starttls()
                smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
        except smtplib.SMTPAuthenticationError as error:
            smtp.close()
            # The maintainer's setting, not the mail's fault: retried once it is fixed.
            login = DeliveryError(f"The mail server refused our login ({error.smtp_code}).")
            raise self._give_up(login) from None
        except (OSError, smtplib.SMTPException) as error:
            smtp.close()
            raise self._give_up(error) from None
        return smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def _unreachable(error: BaseException) -> DeliveryError:
    if isinstance(error, DeliveryError):
        return error
    reason = str(error) or type(error).__name__
    return DeliveryError(f"The mail server could not be reached: {reason}")


def _refused(code: int, answer: bytes | str) -> DeliveryError:
    if isinstance(answer, bytes):
        answer = answer.decode("utf-8", "replace")
    return DeliveryError(
        f"The mail server refused the mail ({code} {answer})"[:300],
        status_code=code,
        permanent=500 <= code < 600,
    )


# --- Building ----------------------------------------------------------------------------------


def mime_mail(
    *,
    subject: str,
    to: str,
    message_id: str,
    text: str,
    html: str,
    calendar: bytes | None = None,
    method: str | None = None,
) -> Message:
    """A mail with text and HTML alternatives and, when given, a text/calendar part
    (`method` as its METHOD parameter) attached as invite.ics."""
    body = MIMEMultipart("alternative", boundary=_boundary())
    body.attach(_text_part(text, "plain"))
    body.attach(_text_part(html, "html"))
    if calendar is None:
        message = body
    else:
        message = MIMEMultipart("mixed", boundary=_boundary())
        message.attach(body)
        invite = _text_part(calendar.decode("utf-8"), "calendar")
        if method:
            invite.set_param("method", method)
        invite.add_header("Content-Disposition", "attachment", filename="invite.ics")
        message.attach(invite)
    message["Subject"] = subject
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Message-ID"] = message_id
    return message


def _boundary() -> str:
    """A part boundary no body can contain: "_" is outside base64's alphabet, and 128
    random bits in 7bit text never recur. (Left to the email package, each boundary costs a
    regular expression compiled to search the whole text for it.)"""
    return f"=_{secrets.token_hex(16)}"


def _text_part(text: str, subtype: str) -> MIMEText:
    """Plain ASCII with short lines goes as it is (7bit); anything else as UTF-8, base64."""
    plain = text.isascii() and all(len(line) <= _LONGEST_7BIT_LINE for line in text.splitlines())
    return MIMEText(text, subtype, "us-ascii" if plain else "utf-8")


def text_of(message: Message) -> str:
    """The text/plain part of `message`, decoded ("" when it has none)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return ""


# --- /dev/mail ---------------------------------------------------------------------------------

_LINK = re.compile(r"https?://[^\s<>\"')]+")


def _keep_for_dev(message: Message) -> None:
    text = text_of(message)
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
    cancelled, requested, confirmed; a decline only to the booker). The guest's row keeps
    their tokened link until it is sent: it is how a guest finds the booking again, and it
    cannot be made later (only its hash is stored)."""
    if change not in KINDS:
        return []
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


def subject_of(booking: Booking, kind: str, role: str = CLIENT) -> str:
    title, expert = booking.event_type.title, booking.expert.display_name
    prefix = EXPERT_PREFIX.get(kind, KINDS[kind][1]) if role == EXPERT else KINDS[kind][1]
    return f"{prefix}: {title} with {expert} and {booking.name}"


def message_id(uid: str) -> str:
    """A mail's stable Message-ID: the outbox row's uid at the host of BASE_URL."""
    host = urlsplit(current_app.config["BASE_URL"]).hostname or "localhost"
    return f"<{uid}@{host}>"


def booking_mail(
    booking: Booking,
    kind: str,
    role: str,
    *,
    manage_url: str | None = None,
    uid: str,
    invites: dict | None = None,
) -> Message:
    """The mail to one party (`role`: client or expert) about `booking`, with a
    text/calendar part (METHOD per KINDS; none for a request or a decline). The guest's
    mail links with `manage_url`; the others link to the booking's page, which they open
    signed in. The expert's mails list the booker's answers, and the expert's request
    carries one-click confirm and decline links. `invites`: a dict the caller keeps across
    the mails of one batch, so both parties' identical invite is built once."""
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
    invites = {} if invites is None else invites
    key = (booking.id, booking.sequence, method, link)
    if method is not None and key not in invites:
        invites[key] = calendar_file([booking], config["BASE_URL"], method=method, manage_url=link)
    context = dict(booking=booking, kind=kind, tz=tz, for_expert=is_expert, link=link)
    if is_expert:
        context.update(_expert_context(booking, kind))
    template = "email/request" if kind == "requested" else "email/booking"
    return mime_mail(
        subject=subject_of(booking, kind, role),
        to=to,
        message_id=message_id(uid),
        text=render_template(f"{template}.txt", **context),
        html=render_template(f"{template}.html", **context),
        calendar=invites.get(key),
        method=method,
    )


def _expert_context(booking: Booking, kind: str) -> dict:
    """What only the expert's mail shows: the booker's answers and, for a request still
    pending, the signed one-click links to confirm or decline it."""
    from .bookings.decide import decision_url
    from .questions import labelled_answers

    context = {"answers": labelled_answers(booking.event_type.questions or [], booking.answers)}
    if kind == "requested" and booking.is_pending and booking.confirm_by is not None:
        context["confirm_url"] = decision_url(booking, "confirm")
        context["decline_url"] = decision_url(booking, "decline")
    return context


def bookings_of(messages: Sequence[OutboxMessage]) -> dict[int, Booking]:
    """The bookings `messages` are about, read afresh in one query with their event type and
    expert (and client, for the zone), by id."""
    ids = {m.booking_id for m in messages if m.booking_id is not None}
    if not ids:
        return {}
    query = (
        sa.select(Booking)
        .where(Booking.id.in_(ids))
        .options(
            joinedload(Booking.event_type), joinedload(Booking.expert), joinedload(Booking.client)
        )
        .execution_options(populate_existing=True)
    )
    return {booking.id: booking for booking in db.session.scalars(query).unique()}


# What a batch's builder says of one message: a mail to send, or the outcome without one.
Built = Message | Outcome
Builder = Callable[[OutboxMessage, "Booking | None"], Built]


def deliver_mails(messages: Sequence[OutboxMessage], build: Builder) -> list[Outcome]:
    """Deliver a batch of mail-like messages: their bookings in one query, each mail built
    by `build` (or its outcome decided without a mail), the transaction ended before the
    network, then all sent over one SMTP connection. One outcome per message, in order."""
    bookings = bookings_of(messages)
    outcomes: list[Outcome | Message] = []
    for message in messages:
        try:
            outcomes.append(build(message, bookings.get(message.booking_id)))
        except DeliveryError as error:
            outcomes.append(error)
        except Exception as error:  # noqa: BLE001 - one bad row must not stop its batch
            log.exception("building %s message %s failed", message.kind, message.uid)
            outcomes.append(DeliveryError(f"Unexpected error: {type(error).__name__}."))
        time.sleep(0)  # under eventlet: let requests run between two mails
    db.session.commit()  # no transaction stays open across the network calls
    mails = [outcome for outcome in outcomes if isinstance(outcome, Message)]
    sent = iter(send_emails(mails) if mails else [])
    return [next(sent) if isinstance(o, Message) else o for o in outcomes]


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
