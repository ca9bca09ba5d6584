"""Free text of several lines (notes, reasons, descriptions, bios), cleaned on the way in,
so that pages, mails and calendar files can carry it as it is (ics.py cleans again, for
rows stored before)."""

from __future__ import annotations

import unicodedata


def multiline(value: str) -> str:
    """`value` with line breaks as "\\n" and control characters other than line breaks and
    tabs dropped (RFC 5545 TEXT admits none: a calendar app may refuse the whole file),
    stripped at both ends."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in value if ch in "\n\t" or unicodedata.category(ch) != "Cc").strip()
