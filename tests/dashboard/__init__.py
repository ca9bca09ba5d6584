"""Helpers shared by the dashboard tests (fixtures stay in each module)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from expertbook.extensions import db
from expertbook.models import Booking, EventType, User, hash_token

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def sign_in_expert(make_user, auth, username: str = "ann", **fields) -> User:
    """A committed expert, signed in on the test client."""
    expert = make_user(username, expert=True, **fields)
    auth.login(username)
    return expert


def assert_csp_clean(html: str) -> None:
    """The strict CSP (`script-src 'self'`, `style-src 'self'`) would block these."""
    assert not INLINE_SCRIPT.search(html), "inline <script> on the page"
    assert "style=" not in html, "inline style attribute on the page"
    assert not re.search(r"<[^>]+\son[a-z]+=", html), "inline event handler on the page"


def make_booking(
    event_type: EventType,
    start: datetime,
    *,
    name: str = "Bob Client",
    status: str = Booking.CONFIRMED,
) -> Booking:
    booking = Booking(
        uid=secrets.token_hex(8),
        expert_id=event_type.expert_id,
        event_type=event_type,
        name=name,
        email="bob@example.com",
        start_at=start,
        end_at=start + timedelta(minutes=event_type.duration_minutes),
        status=status,
        manage_token_hash=hash_token(secrets.token_urlsafe(16)),
    )
    db.session.add(booking)
    db.session.commit()
    return booking
