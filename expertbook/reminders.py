"""Reminder mails before a session (being built: issue 14)."""

from __future__ import annotations


def rows_for(booking, change, *, now, manage_url=None) -> list[dict]:
    return []
