"""The one-click links of a request mail: signed, bound to one booking and one action, and
expiring at the request's deadline. Made by the mail's builder (no request needed) and read
by the link's page (bookings/decide.py).

A link is signed with the app's SECRET_KEY; it works once, since the second answer finds the
request no longer pending.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..models import Booking

# The links' salt is the name of the module that first signed them: links already mailed
# stay valid.
_SALT = "expertbook.bookings.decide"
# No request waits longer than the longest horizon: a bound for the signature's age, beside
# the request's own deadline carried in the link.
LINK_MAX_AGE = timedelta(days=731)


class BadLink(Exception):
    """A one-click link that was not made here, was altered, or is for another action."""


class ExpiredLink(Exception):
    """A one-click link past the request's deadline."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=_SALT)


def decision_token(booking: Booking, action: str) -> str:
    """The signed part of a one-click link: the booking's uid, the action, the deadline."""
    until = int(booking.confirm_by.timestamp())
    return _serializer().dumps([booking.uid, action, until])


def decision_url(booking: Booking, action: str) -> str:
    """The absolute one-click link to `action` ("confirm", "decline") the pending `booking`
    (built without a request: the worker builds the mails)."""
    base = current_app.config["BASE_URL"]
    return f"{base}/bookings/{booking.uid}/{action}/{decision_token(booking, action)}"


def read_decision_token(token: str, uid: str, action: str, now: datetime) -> None:
    """Check a one-click link's signed part for this booking and action, at `now`.

    Raises:
        BadLink: not signed here, altered, or for another booking or action.
        ExpiredLink: the request's deadline has passed.
    """
    try:
        link_uid, link_action, until = _serializer().loads(
            token, max_age=int(LINK_MAX_AGE.total_seconds())
        )
    except BadSignature:  # SignatureExpired is one: a link that old is no link of ours
        raise BadLink("This link is not valid.") from None
    except (ValueError, TypeError):
        raise BadLink("This link is not valid.") from None
    if link_uid != uid or link_action != action or not isinstance(until, int):
        raise BadLink("This link is not valid.")
    if now.timestamp() >= until:
        raise ExpiredLink("This link has expired: the time to answer this request has passed.")
