"""Helpers shared by the public page tests: a London expert and reading slots off a page."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from expertbook.availability import set_availability
from expertbook.extensions import db

SLOT_RE = re.compile(
    r'<a class="slot" rel="nofollow" data-start="([^"]+)" href="([^"]+)">([^<]+)</a>'
)
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
KEY_RE = re.compile(r'name="idempotency_key" type="hidden" value="([^"]*)"')
ACTION_RE = re.compile(r'<form class="form" method="post" action="([^"]+)"')


def london_expert(make_user, make_event_type, **event_fields):
    """Expert `ann` in Europe/London, Mon-Fri 09:00-12:00, with a 30-minute type `intro`."""
    ann = make_user("ann", expert=True, timezone="Europe/London", name="Ann Expert", bio="Coach")
    set_availability(ann, "Europe/London", {weekday: [(9 * 60, 12 * 60)] for weekday in range(5)})
    db.session.commit()
    event_fields.setdefault("slug", "intro")
    event_fields.setdefault("title", "Intro call")
    event_fields.setdefault("duration_minutes", 30)
    return make_event_type(ann, **event_fields)


def next_week(weekday: int = 2) -> date:
    """That weekday (0 = Monday) of next week, in New York, so always in the future."""
    today = datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).date()
    return today + timedelta(days=7 - today.weekday() + weekday)


def london(day: date, hour: int, minute: int = 0) -> datetime:
    """A London wall-clock time as aware UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo("Europe/London"))


def zulu(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slots_on(page: str) -> list[tuple[str, str, str]]:
    """(data-start, unescaped href, label) of every slot link on the page."""
    return [(start, html.unescape(href), label) for start, href, label in SLOT_RE.findall(page)]
