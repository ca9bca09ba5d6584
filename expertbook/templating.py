"""Jinja filters and globals: times are stored in UTC and converted only for display."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from flask import Flask
from flask_login import current_user

from .scheduling import canonical_zone, canonical_zones, is_valid_timezone


def timezone_choices(current: str | None = None) -> list[str]:
    """The zone menu: today's names (Asia/Kolkata, not Asia/Calcutta), sorted, plus
    `current` when it is another valid zone (one set through the API, say), so saving a
    form never silently replaces it."""
    choices = list(canonical_zones())
    if current and is_valid_timezone(current) and canonical_zone(current) not in choices:
        choices.append(current)
    return choices


@cache
def zone_aliases() -> dict[str, str]:
    """Old zone names browsers still report (Asia/Calcutta), each with today's name."""
    return {
        name: canonical_zone(name) for name in available_timezones() if canonical_zone(name) != name
    }


def zone_label(name: str | None) -> str:
    """How a zone name reads on every page and menu: "America/Los Angeles"."""
    return canonical_zone(name or "UTC").replace("_", " ")


def viewer_timezone() -> str:
    if current_user.is_authenticated:
        return current_user.timezone
    return "UTC"


def localtime(value: datetime | None, tz: str | None = None, fmt: str = "%a %d %b %Y, %H:%M"):
    """Format an aware UTC datetime in zone `tz` (default: the viewer's). A clock time that
    happens twice (the hour the clocks go back) gets its zone abbreviation: 01:30 EDT and
    01:30 EST are two different slots."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(tz or viewer_timezone()))
    text = local.strftime(fmt)
    if "%H" in fmt and _ambiguous(local):
        text += " " + _abbreviation(local)
    return text


def timerange(
    start: datetime, end: datetime, tz: str | None = None, day_fmt: str = "%a %d %b %Y, "
) -> str:
    """ "Sun 28 Mar 2027, 10:00 – 11:00" in zone `tz` (default: the viewer's). When the clocks
    change in between (or either end happens twice), both ends name their offset, so the
    length reads right: "01:30 CET – 03:30 CEST" is one hour."""
    zone = ZoneInfo(tz or viewer_timezone())
    first, last = start.astimezone(zone), end.astimezone(zone)
    day = first.strftime(day_fmt)
    if first.utcoffset() == last.utcoffset() and not (_ambiguous(first) or _ambiguous(last)):
        return f"{day}{first:%H:%M} – {last:%H:%M}"
    return f"{day}{first:%H:%M} {_abbreviation(first)} – {last:%H:%M} {_abbreviation(last)}"


def _ambiguous(local: datetime) -> bool:
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def _abbreviation(local: datetime) -> str:
    # Zones without a letter abbreviation in tzdata give their offset ("-03"): say UTC-03.
    name = local.strftime("%Z")
    if name[:1].isalpha():
        return name
    sign, digits = name[0], name[1:]  # "-03", "+1030"
    return f"UTC{sign}{digits[:2]}" + (f":{digits[2:]}" if digits[2:] else "")


def init_app(app: Flask) -> None:
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.filters["timerange"] = timerange
    app.jinja_env.filters["zone_label"] = zone_label
    app.jinja_env.globals["timezone_choices"] = timezone_choices
    app.jinja_env.globals["zone_aliases"] = zone_aliases
    app.jinja_env.globals["viewer_timezone"] = viewer_timezone
