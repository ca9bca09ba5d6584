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


def _random_text(alphabet: str, length: int) -> str:
    """`length` characters of `alphabet`, uniformly random: one draw from the OS's random
    source for the whole text (secrets.choice per character made one each)."""
    number = secrets.randbelow(len(alphabet) ** length)
    characters = []
    for _ in range(length):
        number, index = divmod(number, len(alphabet))
        characters.append(alphabet[index])
    return "".join(characters)


class MockZoom:
    def create_meeting(self, title: str) -> str:
        meeting_id = _random_text(string.digits, 11)
        return f"https://zoom.us/j/{meeting_id}?pwd={secrets.token_urlsafe(16)}"


class MockGoogleMeet:
    def create_meeting(self, title: str) -> str:
        code = _random_text(string.ascii_lowercase, 10)
        return f"https://meet.google.com/{code[:3]}-{code[3:7]}-{code[7:]}"


PROVIDERS: dict[str, VideoProvider] = {"zoom": MockZoom(), "google_meet": MockGoogleMeet()}


def create_meeting(location: str, title: str) -> str:
    """A join link for a new meeting at `location` ("zoom" or "google_meet")."""
    return PROVIDERS[location].create_meeting(title)
