"""Free text of several lines (notes, reasons, descriptions, bios), cleaned on the way in,
so that pages, mails and calendar files can carry it as it is (ics.py cleans again, for
rows stored before)."""

from __future__ import annotations

import unicodedata

# Cc: control characters; Cf: invisible format characters, among them the bidirectional
# overrides and isolates (U+202A-202E, U+2066-2069), which can make shown text read
# differently from what was typed, and the zero-width ones (U+200B-200D, U+2060, U+FEFF),
# which hide text inside text. Names and titles drop them too (str.isprintable).
DROPPED_CATEGORIES = frozenset({"Cc", "Cf"})


def multiline(value: str) -> str:
    """`value` with line breaks as "\\n" and control and invisible format characters
    (bidirectional overrides, zero-width characters) dropped, but line breaks and tabs
    kept (RFC 5545 TEXT admits no control character: a calendar app may refuse the whole
    file), stripped at both ends."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        ch for ch in value if ch in "\n\t" or unicodedata.category(ch) not in DROPPED_CATEGORIES
    ).strip()
