"""Mail: the functions that build and send messages, and the delivery of a batch of
booking-related mails (booking_mail.py's and reminders.py's).

`send_email` sends one message through SMTP when MAIL_SERVER is set; `send_emails` sends
several over one connection (the worker's batches). Without MAIL_SERVER, each mail is one
log line (`mail to=... subject=...`) and, outside production, a copy in a small in-process
list shown at /dev/mail.

Booking and reminder mails are compat32 messages, built as the email package's `email.mime`
classes build them but without their parsing of the headers they have just written: they
cost a fraction of an `EmailMessage`, whose every header is parsed through the header
registry, and a worker builds thousands.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
import smtplib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from email import base64mime
from email.message import Message
from email.policy import Compat32
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import joinedload

from .extensions import db
from .models import Booking, utcnow
from .outbox.models import OutboxMessage
from .outbox.queue import (
    DeliveryError,
    LeaseRunningOut,
    Outcome,
    lease_running_out,
)

log = logging.getLogger("expertbook.mail")

# Seconds each SMTP step (connect, each command) may take.
SMTP_TIMEOUT = 10
# Mails kept for /dev/mail, newest first.
DEV_MAIL_KEPT = 50
# A text part's lines must stay under SMTP's 998 octets to go as they are (7bit).
_LONGEST_7BIT_LINE = 900

# A connection is kept open this long after a batch, for the next one: a new one costs a
# TCP handshake, the greeting and EHLO (with STARTTLS, a TLS handshake and a login too), for
# batches of a mail or two when bookings come one by one. Most servers wait longer before
# they drop an idle client; one dropped anyway is opened again on first use (see
# SmtpConnection.send). At most IDLE_KEPT wait at a time (a worker's OUTBOX_PARALLEL).
IDLE_SECONDS = 20.0
IDLE_KEPT = 8

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
    kept open for several mails and, at the end of the `with` block, for the next batch
    (IDLE_SECONDS); it may begin on a connection an earlier batch left."""

    def __init__(self, config):
        self.config = config
        self._server = _server_of(config)
        self._smtp: smtplib.SMTP | None = _idle.take(self._server)
        self._unreachable: DeliveryError | None = None

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(self, *_exc) -> None:
        """Keep a connection that is still good open for the next batch (see IDLE_SECONDS)."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            _idle.keep(self._server, smtp)

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


def _server_of(config) -> tuple:
    return tuple(
        config[key] for key in ("MAIL_SERVER", "MAIL_PORT", "MAIL_USERNAME", "MAIL_PASSWORD")
    )


class IdleConnections:
    """SMTP connections between two batches, newest last, each with the server settings it
    was opened with and when it went idle."""

    def __init__(self):
        self._lock = threading.Lock()  # green under eventlet; never held across a wait
        self._idle: list[tuple[tuple, float, smtplib.SMTP]] = []

    def take(self, server: tuple) -> smtplib.SMTP | None:
        now = time.monotonic()
        found = None
        with self._lock:
            stale = [entry for entry in self._idle if now - entry[1] > IDLE_SECONDS]
            self._idle = [entry for entry in self._idle if entry not in stale]
            for entry in reversed(self._idle):
                if entry[0] == server:
                    self._idle.remove(entry)
                    found = entry[2]
                    break
        for _, _, smtp in stale:
            smtp.close()  # no QUIT: nothing waits on a connection going away
        return found

    def keep(self, server: tuple, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if len(self._idle) < IDLE_KEPT:
                self._idle.append((server, time.monotonic(), smtp))
                return
        smtp.close()


_idle = IdleConnections()


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
    body = _multipart("alternative", [_text_part(text, "plain"), _text_part(html, "html")])
    if calendar is None:
        message = body
    else:
        invite = _text_part(calendar.decode("utf-8"), "calendar", method=method)
        invite["Content-Disposition"] = 'attachment; filename="invite.ics"'
        message = _multipart("mixed", [body, invite])
    message["Subject"] = subject
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Message-ID"] = message_id
    return message


class _PlainShortHeaders(Compat32):
    """compat32, except that a header short enough for one line and of printable ASCII is
    written as it is: what compat32's folding (the email.header machinery, a quarter of
    a mail's flattening) makes of it too, at a fraction of the cost. Anything else goes
    the usual way."""

    def fold_binary(self, name, value):
        if (
            isinstance(value, str)
            and value.isascii()
            and value.isprintable()
            and len(name) + 2 + len(value) <= self.max_line_length
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


# The policy of the mails mime_mail builds (the generator uses the outer message's).
_POLICY = _PlainShortHeaders()


def _boundary() -> str:
    """A part boundary no body can contain: "_" is outside base64's alphabet, and 128
    random bits in 7bit text never recur. (Left to the email package, each boundary costs a
    regular expression compiled to search the whole text for it.)"""
    return f"=_{secrets.token_hex(16)}"


def _multipart(subtype: str, parts: list[Message]) -> Message:
    """The multipart MIMEMultipart(subtype, boundary=_boundary()) makes, with our policy:
    the same headers in the same order, without its parsing of the Content-Type it has
    just written to set the boundary."""
    message = Message(policy=_POLICY)
    message["Content-Type"] = f'multipart/{subtype}; boundary="{_boundary()}"'
    message["MIME-Version"] = "1.0"
    message.set_payload(parts)
    return message


def _text_part(text: str, subtype: str, method: str | None = None) -> Message:
    """Plain ASCII with short lines goes as it is (7bit); anything else as UTF-8, base64.
    The part MIMEText makes (and then set_param, for `method`), byte for byte, without the
    parsing and rewriting of its Content-Type they do (with the multiparts', a mail's MIME
    building went from some 140 to 16 µs). Its get_charset() is None: nothing reads it;
    the Content-Type names the charset."""
    plain = text.isascii() and all(len(line) <= _LONGEST_7BIT_LINE for line in text.splitlines())
    if plain:
        charset, encoding, payload = "us-ascii", "7bit", text
    else:
        charset, encoding, payload = "utf-8", "base64", base64mime.body_encode(text.encode())
    content_type = f'text/{subtype}; charset="{charset}"'
    part = Message()  # compat32, as MIMEText's: the outer message's policy writes it
    if method:
        # set_param writes the Content-Type anew, after the other headers.
        part["MIME-Version"] = "1.0"
        part["Content-Transfer-Encoding"] = encoding
        part["Content-Type"] = f'{content_type}; method="{method}"'
    else:
        part["Content-Type"] = content_type
        part["MIME-Version"] = "1.0"
        part["Content-Transfer-Encoding"] = encoding
    part.set_payload(payload)
    return part


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


# --- Delivering booking mails and reminders ------------------------------------------------


def message_id(uid: str) -> str:
    """A mail's stable Message-ID: the outbox row's uid at the host of BASE_URL."""
    host = urlsplit(current_app.config["BASE_URL"]).hostname or "localhost"
    return f"<{uid}@{host}>"


def bookings_of(messages: Sequence[OutboxMessage]) -> dict[int, Booking]:
    """The bookings `messages` are about, read afresh in one query with their event type and
    expert (and client, for the zone), by id."""
    ids = {m.booking_id for m in messages if m.booking_id is not None}
    if not ids:
        return {}
    bookings = db.session.scalars(_bookings_by_id(), {"ids": sorted(ids)}).unique()
    return {booking.id: booking for booking in bookings}


@functools.cache
def _bookings_by_id() -> sa.Select:
    """bookings_of's query, built once (each batch of mails runs it: building it anew
    cost a third of its time), the ids bound at each execution."""
    return (
        sa.select(Booking)
        .where(Booking.id.in_(sa.bindparam("ids", expanding=True)))
        .options(
            joinedload(Booking.event_type), joinedload(Booking.expert), joinedload(Booking.client)
        )
        .execution_options(populate_existing=True)
    )


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
