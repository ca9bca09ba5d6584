"""The availability editor: time zone and weekly hours, plus date overrides.

The page works without JavaScript: each day shows its intervals and one spare empty row, and
rows left empty are ignored. Times come from `<input type="time">`, which cannot say 24:00,
so an end of 00:00 means midnight closing (the API's "24:00").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from itertools import zip_longest

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.decorators import expert_required
from ..availability import WEEKDAYS, AvailabilityError, availability_of, set_availability
from ..extensions import db
from ..realtime import announce_slots_changed
from ..scheduling import canonical_zone, format_hhmm, parse_hhmm, validate_day_intervals
from ..scheduling.slots import MINUTES_PER_DAY
from .routes import WEEKDAY_NAMES, bp, expert_today, format_intervals

Rows = list[tuple[str, str]]


@dataclass
class DayHours:
    """One weekday as the editor shows it: the rows as typed (or saved) and its error."""

    key: str
    name: str
    rows: Rows
    error: str | None = None


@dataclass
class OverrideInput:
    """The add-an-override form as submitted, kept for redisplay after an error."""

    date: str = ""
    day_off: bool = False
    rows: Rows = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def sentence(message: str) -> str:
    """The scheduling core's lower-case messages, as a sentence for the page."""
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else message + "."


def time_value(minutes: int) -> str:
    """A saved minute as `<input type="time">` shows it: midnight closing (1440) is 00:00."""
    return format_hhmm(minutes % MINUTES_PER_DAY)


def submitted_rows(prefix: str) -> Rows:
    """The (start, end) texts of the rows named `<prefix>-start`/`-end`; empty rows dropped."""
    starts = request.form.getlist(f"{prefix}-start")
    ends = request.form.getlist(f"{prefix}-end")
    rows = [(s.strip(), e.strip()) for s, e in zip_longest(starts, ends, fillvalue="")]
    return [(start, end) for start, end in rows if start or end]


def parse_time(text: str, *, end: bool) -> int:
    """Minutes since midnight; as an end, 00:00 (and 24:00) is midnight closing, 1440."""
    if len(text) == 8 and text.endswith(":00"):
        text = text[:5]  # some browsers add the seconds
    if end and text == "00:00":
        return MINUTES_PER_DAY
    return parse_hhmm(text, allow_24=end)


def parse_rows(rows: Rows) -> list[tuple[int, int]]:
    """One day's rows as sorted (start_minute, end_minute) intervals.

    Raises:
        ValueError: a message for the person who typed them (a half-empty row, a time that
            is not HH:MM, an end before its start, overlapping intervals).
    """
    intervals = []
    for start, end in rows:
        if not start or not end:
            raise ValueError("Give each row both a start and an end time.")
        try:
            intervals.append((parse_time(start, end=False), parse_time(end, end=True)))
        except ValueError:
            raise ValueError(f"“{start}–{end}” is not a time range: use HH:MM.") from None
    try:
        return validate_day_intervals(intervals)
    except ValueError as error:
        raise ValueError(sentence(str(error))) from None


def read_override(override: OverrideInput) -> tuple[date | None, list[tuple[int, int]]]:
    """The override's date and intervals (none for a day off); problems go to its errors."""
    day = None
    try:
        day = date.fromisoformat(override.date)
    except ValueError:
        override.errors["date"] = "Pick a date (YYYY-MM-DD)."
    else:
        if day < expert_today():
            override.errors["date"] = "That date has passed: pick today or a later date."
    if override.day_off:
        return day, []
    try:
        intervals = parse_rows(override.rows)
    except ValueError as error:
        override.errors["hours"] = str(error)
        return day, []
    if not intervals:
        override.errors["hours"] = "Give the hours for this date, or tick Day off."
    return day, intervals


def saved_days() -> list[DayHours]:
    weekly = availability_of(current_user).weekly
    return [
        DayHours(key, name, [(time_value(s), time_value(e)) for s, e in weekly.get(weekday, ())])
        for weekday, (key, name) in enumerate(zip(WEEKDAYS, WEEKDAY_NAMES, strict=True))
    ]


def render_availability(
    days: list[DayHours],
    timezone: str,
    *,
    timezone_error: str | None = None,
    override: OverrideInput | None = None,
):
    today = expert_today()
    overrides = [
        {"date": o.date, "hours": format_intervals(o.intervals), "past": o.date < today}
        for o in current_user.date_overrides
    ]
    return render_template(
        "dashboard/availability.html",
        days=days,
        timezone=timezone,
        timezone_error=timezone_error,
        overrides=overrides,
        override=override or OverrideInput(),
    )


@bp.route("/availability", methods=["GET", "POST"])
@expert_required
def availability():
    """Show the editor; save the time zone and weekly hours (overrides stay as they are)."""
    if request.method == "GET":
        return render_availability(saved_days(), canonical_zone(current_user.timezone))
    timezone = canonical_zone(request.form.get("timezone", "").strip())
    days = [
        DayHours(key, name, submitted_rows(key))
        for key, name in zip(WEEKDAYS, WEEKDAY_NAMES, strict=True)
    ]
    weekly = {}
    for weekday, day in enumerate(days):
        try:
            weekly[weekday] = parse_rows(day.rows)
        except ValueError as error:
            day.error = str(error)
    if any(day.error for day in days):
        return render_availability(days, timezone)
    try:
        set_availability(current_user, timezone, {d: i for d, i in weekly.items() if i})
    except AvailabilityError as error:
        db.session.rollback()
        by_key = {f"weekly.{day.key}": day for day in days}
        if error.field in by_key:
            by_key[error.field].error = sentence(error.message)
            return render_availability(days, timezone)
        return render_availability(days, timezone, timezone_error=sentence(error.message))
    db.session.commit()
    announce_slots_changed(current_user.id)
    flash("Weekly hours saved.", "success")
    return redirect(url_for("dashboard.availability"))


@bp.post("/availability/overrides")
@expert_required
def add_override():
    """Give one date other hours, or a day off; replaces that date's override if any."""
    override = OverrideInput(
        date=request.form.get("date", "").strip(),
        day_off=bool(request.form.get("day_off")),
        rows=submitted_rows("override"),
    )
    day, intervals = read_override(override)
    if not override.errors:
        hours = availability_of(current_user)
        try:
            set_availability(
                current_user,
                current_user.timezone,
                hours.weekly,
                {**hours.overrides, day: intervals},
            )
        except AvailabilityError as error:
            db.session.rollback()
            override.errors["hours"] = sentence(error.message)
    if override.errors:
        return render_availability(saved_days(), current_user.timezone, override=override)
    db.session.commit()
    announce_slots_changed(current_user.id)
    flash(f"Override for {day:%a %d %b %Y} saved.", "success")
    return redirect(url_for("dashboard.availability"))


@bp.post("/availability/overrides/<day>/delete")
@expert_required
def remove_override(day: str):
    """Drop one date's override: the weekly hours apply to it again."""
    try:
        removed = date.fromisoformat(day)
    except ValueError:
        abort(404)
    hours = availability_of(current_user)
    if removed in hours.overrides:
        kept = {d: i for d, i in hours.overrides.items() if d != removed}
        set_availability(current_user, current_user.timezone, hours.weekly, kept)
        db.session.commit()
        announce_slots_changed(current_user.id)
        flash(f"Override for {removed:%a %d %b %Y} removed.", "success")
    return redirect(url_for("dashboard.availability"))
