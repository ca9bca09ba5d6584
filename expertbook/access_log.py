"""The server's access log, without the secrets some URLs carry."""

from __future__ import annotations

import re
from typing import TextIO

# A guest's manage token (?token=...), an expert's calendar feed address, and the signed
# part of a request mail's one-click confirm or decline link.
TOKEN = re.compile(r"(token=)[^&\s\"]+")
FEED = re.compile(r"(/calendar/)[^\s\"?/]+(\.ics)")
DECISION = re.compile(r"(/bookings/[^/\s]+/(?:confirm|decline)/)[^\s\"?]+")


class RedactedLog:
    """A file-like log for eventlet's WSGI server that blanks out those secrets."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        if not text.strip():
            return  # a request's line when the access log is off (ACCESS_LOG=false)
        text = DECISION.sub(r"\1…", TOKEN.sub(r"\1…", text))
        self.stream.write(FEED.sub(r"\1…\2", text))

    def flush(self) -> None:
        self.stream.flush()
