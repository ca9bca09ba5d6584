"""A booking's manage link: its page with the guest's secret token, a guest's only key to
the booking (`/bookings/<uid>?token=...`; the calendar file takes the same token).

The booking stores only the token's SHA-256 (`manage_token_hash`), and bookings/access.py
checks a link against it; that check is the whole scheme. The token itself is not random but
derived from the booking's uid with the app's SECRET_KEY (HMAC-SHA256, 43 URL-safe
characters, as long as a random token), so whatever writes to the guest later (the
confirmation of a request, a change the expert makes, a reminder) makes the same link again
without a copy of it kept anywhere. Guessing it means knowing SECRET_KEY, which signs the
sessions and the one-click links already.

A booking made before tokens were derived (or under another SECRET_KEY) has a token that
cannot be made again: for it, guest_manage_url is None and its link travels only in its
outbox rows, as it did.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from flask import current_app

from ..models import Booking, hash_token

# Keeps this HMAC apart from anything else keyed with SECRET_KEY.
_CONTEXT = b"expertbook.bookings.manage-link\x1f"


def derive_token(uid: str) -> str:
    """The manage token of the booking `uid` (needs an app context)."""
    key = current_app.secret_key
    key = key.encode() if isinstance(key, str) else bytes(key)
    digest = hmac.new(key, _CONTEXT + uid.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def manage_token(booking: Booking) -> str | None:
    """The booking's manage token, when it is the derived one; None for a token that
    cannot be made again (a booking made before tokens were derived)."""
    token = derive_token(booking.uid)
    if not hmac.compare_digest(hash_token(token), booking.manage_token_hash or ""):
        return None
    return token


def guest_manage_url(booking: Booking) -> str | None:
    """The absolute manage link of a guest's booking, as its first answer gave it (built
    without a request: the outbox worker writes the mails); None for a booking of an
    account (its owner opens the plain page signed in) or whose token cannot be made
    again."""
    if booking.client_id is not None:
        return None
    token = manage_token(booking)
    if token is None:
        return None
    return f"{current_app.config['BASE_URL']}/bookings/{booking.uid}?token={token}"
