"""Live holds: a slot held for a few minutes while someone fills in the booking form.

A hold blocks its time like a booking of its event type (with the type's buffers) for
everybody but its holder, until it is released, booked through or expires. Its holder is
the browser session that placed it or whoever has its token (`Holder`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# A hold lives this long after it is placed or last renewed.
HOLD_TTL = timedelta(minutes=5)
# A hold bound to a socket ends this long after the socket has gone.
DISCONNECT_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Holder:
    """Who is acting on holds: the SHA-256 of a hold token and/or of the browser
    session's hold key. A hold belongs to the holder when either matches (non-empty)."""

    token_hash: str | None = None
    session_key: str | None = None
