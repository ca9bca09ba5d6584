"""Delivering one webhook: the outbox worker's handler for kind "webhook".

`POST <url>` with the stored body, signed with the endpoint's secret; 2xx is delivered,
anything else (a redirect included: it is never followed) or no answer within the app's
WEBHOOK_TIMEOUT_SECONDS (10 s) raises DeliveryError, and the worker retries with growing pauses.

The connection goes through the calendars' guarded HTTP layer (calendars/net.py): its
resolver refuses private addresses on the connection itself, so an address that turned
private since the endpoint was added is refused at delivery too. Only plain sockets, so
the call yields under eventlet; the whole call ends after that timeout, with or without it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

from flask import current_app
from niquests import exceptions as http_errors

from ..calendars import net
from ..calendars.secrets import SecretUnreadable, decrypt
from ..extensions import db
from ..outbox.models import OutboxMessage, WebhookEndpoint
from ..outbox.queue import DeliveryError, handler
from .endpoints import allow_private

MAX_ANSWER_BYTES = 64 * 1024  # of the answer's body read at most; the rest is never read
EXCERPT_CHARS = 200  # of the answer kept in the error the expert sees
USER_AGENT = "ExpertBook-Webhooks/1"

_CHUNK = 16 * 1024


def signature(secret: str, body: bytes) -> str:
    """The X-ExpertBook-Signature header's value: `sha256=<hex HMAC-SHA256 of body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@handler(OutboxMessage.WEBHOOK)
def deliver(message: OutboxMessage) -> int:
    """POST the message's body to its endpoint; the receiver's status code when 2xx.

    Raises DeliveryError for any other answer or none (permanent when the endpoint is gone
    or its secret can no longer be read).
    """
    uid, event, body = message.uid, message.event, (message.payload or {}).get("body")
    if not isinstance(body, str):
        raise DeliveryError("The delivery has no body to send.", permanent=True)
    endpoint = db.session.get(WebhookEndpoint, message.endpoint_id)
    if endpoint is None:
        raise DeliveryError("The webhook was removed.", permanent=True)
    url = endpoint.url
    try:
        secret = decrypt(endpoint.secret)
    except SecretUnreadable:
        # Permanent, as for a calendar's password: no retry brings the old key back, and
        # 24 hours of them would only delay the message that says what to do.
        raise DeliveryError(
            "The webhook's secret can no longer be read (the server's encryption key "
            "changed); remove the webhook and add it again.",
            permanent=True,
        ) from None
    db.session.commit()  # no transaction stays open across the network call
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-ExpertBook-Event": event,
        "X-ExpertBook-Delivery": uid,
        "X-ExpertBook-Signature": signature(secret, body.encode()),
    }
    status, excerpt = post(url, body.encode(), headers, allow_private=allow_private())
    if 200 <= status < 300:
        return status
    raise DeliveryError(_answer_message(status, excerpt), status_code=status)


def post(url: str, body: bytes, headers: dict[str, str], *, allow_private: bool):
    """POST `body` to `url`: (status code, the start of the answer's text), within the app's
    WEBHOOK_TIMEOUT_SECONDS for the whole call (connecting, sending, the answer) however
    the receiver trickles its bytes (per-read timeouts alone would not).

    No redirect is followed; at most MAX_ANSWER_BYTES of the answer are read. Raises
    DeliveryError when no answer comes (refused, unreachable, timeout passed, private host).
    """
    timeout = current_app.config["WEBHOOK_TIMEOUT_SECONDS"]
    if net.green():  # the server: a green thread, ended by eventlet's Timeout
        import eventlet

        timer = eventlet.Timeout(timeout)
        try:
            return _post(url, body, headers, allow_private, timeout)
        except eventlet.Timeout as exc:
            if exc is not timer:
                raise
            raise DeliveryError(_no_answer(timeout)) from None
        finally:
            timer.cancel()
    # A process without eventlet (`flask worker`, tests): the call runs in a thread of its
    # own, given up on at the deadline (its own per-read timeouts end it soon after).
    outcome: list = []

    def call() -> None:
        try:
            outcome.append(_post(url, body, headers, allow_private, timeout))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome.append(exc)

    thread = threading.Thread(target=call, name="webhook-post", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise DeliveryError(_no_answer(timeout))
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _no_answer(timeout: float, whole: str = "") -> str:
    return f"No {whole}answer within {timeout:g} seconds."


def _post(url: str, body: bytes, headers: dict[str, str], allow_private: bool, timeout: float):
    deadline = time.monotonic() + timeout
    host = urlsplit(url).hostname or url
    try:
        url = net.check_url(url, allow_private=allow_private)
        # The calendars' guarded session: every connection checked by its resolver.
        with net.session(allow_private) as session:
            remaining = max(deadline - time.monotonic(), 0.1)
            response = session.post(
                url,
                data=body,
                headers={**headers, "Accept-Encoding": "identity"},
                allow_redirects=False,
                stream=True,
                timeout=(remaining, remaining),
            )
            with response:
                answer = _read_start(response, deadline, timeout)
                return response.status_code, _excerpt(response, answer)
    except DeliveryError:
        raise
    except net.RemoteError as error:
        raise DeliveryError(error.message) from None
    except Exception as exc:
        raise DeliveryError(_in_words(exc, host, timeout)) from exc


def _read_start(response, deadline: float, timeout: float) -> bytes:
    """The first MAX_ANSWER_BYTES of the answer's body (as sent, never decompressed)."""
    answer = bytearray()
    for chunk in response.iter_raw(chunk_size=_CHUNK):
        answer += chunk
        if len(answer) >= MAX_ANSWER_BYTES:
            break
        if time.monotonic() > deadline:
            raise DeliveryError(_no_answer(timeout, "whole "))
    return bytes(answer[:MAX_ANSWER_BYTES])


def _excerpt(response, answer: bytes) -> str:
    """A short, printable start of the answer, for the expert to see why it failed."""
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        return ""
    text = answer[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    text = re.sub(r"\s+", " ", re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text)).strip()
    return text[:EXCERPT_CHARS]


def _answer_message(status: int, excerpt: str) -> str:
    if 300 <= status < 400:
        message = f"The receiver answered with a redirect ({status}); redirects are not followed."
    else:
        message = f"The receiver answered {status}."
    return f"{message} {excerpt}" if excerpt else message


def _in_words(exc: Exception, host: str, timeout: float) -> str:
    """Why no answer came, in words for the expert."""
    chain = list(net._chain(exc))

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    refused = next((e for e in chain if isinstance(e, net._Refused)), None)
    if refused is not None:
        return net._private_message(refused.host)
    if has(ssl.SSLCertVerificationError) or (
        has(http_errors.SSLError) and "certificate" in str(exc).lower()
    ):
        return f"The TLS certificate of {host} could not be verified."
    if has(http_errors.SSLError, ssl.SSLError):
        return f"A secure (TLS) connection to {host} could not be made."
    if has(http_errors.Timeout, TimeoutError):
        return _no_answer(timeout)
    if has(socket.gaierror):
        return f"Could not reach {host} (the name was not found)."
    if has(ConnectionRefusedError):
        return f"Could not reach {host} (connection refused)."
    if has(http_errors.ConnectionError, ConnectionError):
        return f"Could not reach {host} (the connection was closed without an answer)."
    return f"Could not reach {host}."
