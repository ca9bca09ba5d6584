"""Jinja filters and globals: times are stored in UTC and converted only for display."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from flask import Flask
from flask_login import current_user


@cache
def timezone_choices() -> list[str]:
    """Every IANA zone name that tzdata knows, sorted: the same set the API accepts, so a
    zone set through the API is never silently replaced by saving a form."""
    return sorted(available_timezones())


def viewer_timezone() -> str:
    if current_user.is_authenticated:
        return current_user.timezone
    return "UTC"


def localtime(value: datetime | None, tz: str | None = None, fmt: str = "%a %d %b %Y, %H:%M"):
    """Format an aware UTC datetime in zone `tz` (default: the viewer's)."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(tz or viewer_timezone())).strftime(fmt)


def init_app(app: Flask) -> None:
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.globals["timezone_choices"] = timezone_choices
    app.jinja_env.globals["viewer_timezone"] = viewer_timezone
