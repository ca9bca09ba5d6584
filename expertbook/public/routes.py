"""Public pages: the expert's page and the shareable booking link (its confirm step is
confirm.py's, on the same blueprint)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy.orm.attributes import set_committed_value

from ..event_types import LOCATIONS
from ..extensions import db
from ..holds import page_holder
from ..models import EventType, User
from ..scheduling import canonical_zone, is_valid_timezone, iso_z
from ..slots import offer_days
from .calendar import (
    last_day_of,
    local_today,
    month_grid,
    month_key,
    parse_day,
    parse_month,
    shift_month,
)
from .forms import draft_answers
from .links import query_link, slot_links, zone_menu

bp = Blueprint("public", __name__)

# The session keeps the details of a booking that could not be made (to fill the next form
# of that event type, once).
DRAFT = "booking_draft"
DRAFT_FIELDS = {"name": 100, "email": 254}
# The session is a signed, not encrypted, cookie sent with every request, and a browser drops
# one over 4 KB: notes ride along only when short as stored (non-Latin text grows sixfold).
MAX_DRAFT_NOTES = 500


@bp.app_template_global()
def location_label(location: str) -> str:
    return LOCATIONS.get(location, location)


def expert_or_404(username: str) -> User:
    expert = db.session.scalar(sa.select(User).where(User.username == username.lower()))
    if expert is None or not expert.is_expert:
        abort(404, description=f"Nobody here takes bookings as “{username[:40]}”.")
    return expert


class NotTakingBookings(Exception):
    """The event type exists but its expert switched it off."""

    def __init__(self, event_type: EventType):
        super().__init__(event_type.title)
        self.event_type = event_type


@bp.errorhandler(NotTakingBookings)
def not_taking_bookings(error: NotTakingBookings):
    """A switched-off event type: say so, and offer the expert's other types."""
    expert = error.event_type.expert
    others = [e for e in expert.event_types if e.active]
    page = render_template(
        "public/not_taking.html", event_type=error.event_type, expert=expert, others=others
    )
    return page, 404


# The expert by username and their event type by slug (None without one), in one query.
EXPERT_AND_EVENT_TYPE = (
    sa.select(User, EventType)
    .outerjoin(
        EventType,
        sa.and_(EventType.expert_id == User.id, EventType.slug == sa.bindparam("slug")),
    )
    .where(User.username == sa.bindparam("username"))
)


def event_type_or_404(username: str, slug: str) -> EventType:
    """The expert's active event type, with its expert, in one query; NotTakingBookings
    for a switched-off one."""
    params = {"username": username.lower(), "slug": slug}
    found = db.session.execute(EXPERT_AND_EVENT_TYPE, params).first()
    expert, event_type = found if found is not None else (None, None)
    if expert is None or not expert.is_expert:
        abort(404, description=f"Nobody here takes bookings as “{username[:40]}”.")
    if event_type is not None:
        set_committed_value(event_type, "expert", expert)  # the row's: no query for it
    if event_type is None:
        abort(404, description=f"{expert.display_name} has no event type “{slug[:60]}”.")
    if not event_type.active:
        if request.method == "POST":
            keep_draft(event_type)
        raise NotTakingBookings(event_type)
    return event_type


def keep_draft(event_type: EventType) -> bool:
    """Keep what the guest typed for this event type's next booking form in this browser: name
    and email (a signed-in user's come from their account), and the notes and the answers
    to the questions when short.

    Returns:
        False when the notes or the answers were too long to keep.
    """
    form = request.form
    draft: dict[str, Any] = {}
    if not current_user.is_authenticated:
        draft = {name: form.get(name, "")[:limit] for name, limit in DRAFT_FIELDS.items()}
    notes = form.get("notes", "")
    fits = len(json.dumps(notes)) <= MAX_DRAFT_NOTES
    if fits:
        draft["notes"] = notes
    answers = draft_answers(event_type.questions, form)
    if answers is None:
        fits = False
    elif any(value not in ("", False) for value in answers.values()):
        draft["answers"] = answers
    if any(draft.values()):
        session[DRAFT] = {"event_type_id": event_type.id, **draft}
    else:
        session.pop(DRAFT, None)
    return fits


def viewer_zone(expert: User) -> tuple[str, str | None]:
    """The zone to show times in, and the `tz` parameter when it was refused.

    A valid `?tz=` wins; else the signed-in user's zone, else the expert's."""
    requested = request.args.get("tz")
    if requested and is_valid_timezone(requested):
        return canonical_zone(requested), None
    fallbacks = [current_user.timezone] if current_user.is_authenticated else []
    fallbacks.append(expert.timezone)
    tz = canonical_zone(next((name for name in fallbacks if is_valid_timezone(name)), "UTC"))
    # Echo at most a short preview of a refused value back into the page.
    return tz, (requested[:40] if requested else None)


def month_view(
    event_type: EventType, tz: str, now: datetime, day: date | None, month: date | None
) -> dict[str, Any]:
    """Everything the calendar and the day's slot list show, from ONE slot query (links
    built once each: links.py)."""
    today = local_today(now, tz)
    horizon = now + timedelta(days=event_type.max_days_ahead)
    last_open_day = local_today(horizon, tz)
    first = (day or month or today).replace(day=1)
    last = last_day_of(first)
    days, slots, held = set(), [], []
    # A month wholly past or beyond the horizon has nothing to offer (and may lie at the very
    # edge of the calendar, where the slot query's margins would overflow).
    if last >= today and first <= last_open_day:
        # The viewer's own hold (a booker who went back) keeps its time offered to them.
        offered = offer_days(
            event_type, day_from=first, day_to=last, day=day, viewer_tz=tz, now=now,
            holder=page_holder(),
        )  # fmt: skip
        # Held: someone else is booking those times right now (they show, cannot be picked).
        days, day, slots, held = offered.days, offered.day, offered.slots, offered.held
    earlier, following = shift_month(first, -1), shift_month(first, 1)
    path = {"username": event_type.expert.username, "slug": event_type.slug}
    return {
        "today": today,
        "month": first,
        "month_key": month_key(first),
        "weeks": month_grid(first, days, today, day),
        "day_url": query_link("public.booking_page", "date", path, tz=tz),
        "day": day,
        "slot_links": slot_links(
            slots, held, tz, query_link("public.confirm", "start", path, tz=tz)
        ),
        # "YYYY-MM" of the months to link to, None where there is nothing to see.
        "prev_month": month_key(earlier) if earlier and first > today.replace(day=1) else None,
        "next_month": month_key(following) if following and following <= last_open_day else None,
        "horizon": horizon,
    }


@bp.get("/")
def home():
    """The landing page."""
    return render_template("public/home.html")


@bp.get("/<username>/")
@bp.get("/<username>/<slug>/")
def without_trailing_slash(username: str, slug: str | None = None):
    """A link copied with a trailing slash: the same page, at its one address."""
    if slug is None:
        path = url_for("public.expert_page", username=username)
    else:
        path = url_for("public.booking_page", username=username, slug=slug)
    query = request.query_string.decode("latin-1")
    return redirect(f"{path}?{query}" if query else path, code=308)


@bp.get("/<username>")
def expert_page(username: str):
    """The expert's card and active event types."""
    expert = expert_or_404(username)
    event_types = [e for e in expert.event_types if e.active]
    return render_template("public/expert.html", expert=expert, event_types=event_types)


@bp.get("/<username>/<slug>")
def booking_page(username: str, slug: str):
    """The shareable booking link: a month calendar and the chosen day's free times."""
    event_type = event_type_or_404(username, slug)
    tz, refused_tz = viewer_zone(event_type.expert)
    view = month_view(
        event_type,
        tz,
        datetime.now(UTC),
        day=parse_day(request.args.get("date")),
        month=parse_month(request.args.get("month")),
    )
    return render_template(
        "public/booking.html",
        event_type=event_type,
        expert=event_type.expert,
        tz=tz,
        refused_tz=refused_tz,
        tz_in_url=refused_tz is None and "tz" in request.args,
        zulu=iso_z,
        zone_menu=zone_menu,
        **view,
    )


from . import confirm  # noqa: E402,F401  (the confirm step's views, on this blueprint)
