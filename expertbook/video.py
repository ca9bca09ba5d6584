"""Video meeting links, behind one small interface a real provider could replace.

The mocks make links in each provider's public shape; they are random, unique per booking
and stored on the booking, so they stay stable once made.
"""

from __future__ import annotations

import secrets
import string
from typing import Protocol


class VideoProvider(Protocol):
    def create_meeting(self, title: str) -> str:
        """Return the join URL of a new meeting."""


class MockZoom:
    def create_meeting(self, title: str) -> str:
        meeting_id = "".join(secrets.choice(string.digits) for _ in range(11))
        return f"https://zoom.us/j/{meeting_id}?pwd={secrets.token_urlsafe(16)}"


class MockGoogleMeet:
    def create_meeting(self, title: str) -> str:
        def part(n: int) -> str:
            return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))

        return f"https://meet.google.com/{part(3)}-{part(4)}-{part(3)}"


PROVIDERS: dict[str, VideoProvider] = {"zoom": MockZoom(), "google_meet": MockGoogleMeet()}


def create_meeting(location: str, title: str) -> str:
    """A join link for a new meeting at `location` ("zoom" or "google_meet")."""
    return PROVIDERS[location].create_meeting(title)
