"""Public pages: the expert's page, the shareable booking link and its confirm step."""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from ..booking import (
    BookingInputError,
    IdempotencyKeyReused,
    OwnEventType,
    SlotHeld,
    SlotUnavailable,
    book_slot,
    check_idempotency_key,
    check_request,
)
from ..bookings.payloads import booking_payload
from ..cache_control import no_store
from ..event_types import LOCATIONS
from ..extensions import db, hold_limit, public_booking_limit
from ..holds import page_holder, place_hold
from ..models import Booking, EventType, User
from ..realtime import announce_booked, announce_hold_placed
from ..scheduling import canonical_zone, is_valid_timezone, iso_z, zone
from ..slots import is_bookable, offer
from .calendar import (
    last_day_of,
    local_today,
    month_grid,
    month_key,
    parse_day,
    parse_month,
    shift_month,
    slots_by_day,
)
from .forms import BookingForm, draft_answers

bp = Blueprint("public", __name__)

GONE_MESSAGE = "That time is no longer available — pick another."
TAKEN_MESSAGE = (
    "Sorry, that time was just taken by someone else. Your details are kept: pick another time."
)
TAKEN_LONG_NOTES = (
    "Sorry, that time was just taken by someone else. Copy your notes and answers before you"
    " pick another time: your name and email are kept, but notes this long are not, nor long"
    " answers."
)
HELD_MESSAGE = (
    "Someone else is booking this time right now. If they do not finish, it frees up within"
    " {minutes} minute{s}: try again then, or pick another time."
)
QUESTIONS_CHANGED = "The questions for this booking have just changed: please check your answers."
OWN_EVENT_TYPE = "This is your own event type: share its link with clients to get booked."
# The session remembers the last bookings made in this browser (for Back after booking)
# and the details of a booking that could not be made (to fill the next form of that event
# type, once).
BOOKED = "booked_here"
DRAFT = "booking_draft"
REMEMBERED_BOOKINGS = 10
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


def event_type_or_404(username: str, slug: str) -> EventType:
    """The expert's active event type; NotTakingBookings for a switched-off one."""
    expert = expert_or_404(username)
    event_type = db.session.scalar(
        sa.select(EventType).where(EventType.expert_id == expert.id, EventType.slug == slug)
    )
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


def remember_booking(booking: Booking, manage_path: str) -> None:
    """Note a booking made in this browser, so that going Back to its time says so."""
    kept = [entry for entry in session.get(BOOKED, []) if isinstance(entry, list)]
    kept.append([booking.event_type_id, iso_z(booking.start_at), manage_path])
    session[BOOKED] = kept[-REMEMBERED_BOOKINGS:]


def own_booking_path(event_type: EventType, start: datetime) -> str | None:
    """The page of this browser's (or this account's) confirmed booking of this time."""
    for entry in session.get(BOOKED, []):
        if entry[:2] == [event_type.id, iso_z(start)]:
            return entry[2]
    if current_user.is_authenticated:
        uid = db.session.scalar(
            sa.select(Booking.uid).where(
                Booking.event_type_id == event_type.id,
                Booking.client_id == current_user.id,
                Booking.start_at == start,
                Booking.status == Booking.CONFIRMED,
            )
        )
        if uid:
            return url_for("bookings.detail", uid=uid)
    return None


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


def parse_start(value: str | None) -> datetime | None:
    """An aware instant from `?start=`, or None (unparseable, naive or absurd)."""
    if not value or len(value) > 40:
        return None
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Far-off years are never offered, and near the calendar's ends zone arithmetic overflows.
    if start.tzinfo is None or start.utcoffset() is None or not 1900 < start.year < 9000:
        return None
    return start.astimezone(UTC)


def booking_url(event_type: EventType, tz: str, start: datetime | None = None) -> str:
    """The booking page in zone `tz`, opened on the local day of `start` when given."""
    day = start.astimezone(zone(tz)).date().isoformat() if start else None
    return url_for(
        "public.booking_page",
        username=event_type.expert.username,
        slug=event_type.slug,
        date=day,
        tz=tz,
    )


def month_view(
    event_type: EventType, tz: str, now: datetime, day: date | None, month: date | None
) -> dict[str, Any]:
    """Everything the calendar and the day's slot list show, from ONE slot query."""
    today = local_today(now, tz)
    horizon = now + timedelta(days=event_type.max_days_ahead)
    last_open_day = local_today(horizon, tz)
    first = (day or month or today).replace(day=1)
    last = last_day_of(first)
    slots, held = [], []
    # A month wholly past or beyond the horizon has nothing to offer (and may lie at the very
    # edge of the calendar, where the slot query's margins would overflow).
    if last >= today and first <= last_open_day:
        # The viewer's own hold (a booker who went back) keeps its time offered to them.
        holder = page_holder()
        offered = offer(
            event_type, day_from=first, day_to=last, viewer_tz=tz, now=now, holder=holder
        )
        # Held: someone else is booking those times right now (they show, cannot be picked).
        slots, held = offered.slots, offered.held
    by_day = slots_by_day(slots, tz)
    if day is None:
        day = min(by_day, default=None)
    earlier, following = shift_month(first, -1), shift_month(first, 1)
    return {
        "today": today,
        "month": first,
        "month_key": month_key(first),
        "weeks": month_grid(first, by_day, today, day),
        "day": day,
        "day_slots": by_day.get(day, []),
        "day_held": slots_by_day(held, tz).get(day, []),
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
        **view,
    )


@dataclass(frozen=True)
class PageHold:
    """The confirm page's hold of its time for this browser, or how long another's lasts."""

    hold_id: str = ""
    token: str = ""
    expires_at: str = ""
    # Seconds until another booker's hold of the time may end; 0 when the time is ours.
    retry_after: int = 0


def is_prefetch() -> bool:
    """True for a request the browser makes ahead of a click (a prefetch or prerender),
    which nobody may have asked for."""
    headers = request.headers
    return (
        "prefetch" in headers.get("Sec-Purpose", "").lower()
        or "prefetch" in headers.get("Purpose", "").lower()
        or headers.get("X-Moz", "").lower() == "prefetch"
    )


def hold_for_page(
    event_type: EventType, start: datetime | None, now: datetime, own: bool
) -> PageHold | None:
    """Hold the confirm page's time for this browser session, so that it holds without
    script too, and tell every open booking page. None when the time is not available.
    The expert previewing their own link holds nothing, nor does a prefetch (the page's
    script holds the time once it is shown)."""
    if start is None:
        return None
    if own or is_prefetch():
        return PageHold() if is_bookable(event_type, start, now) else None
    try:
        hold, token, released = place_hold(
            event_type.id,
            start,
            holder_session_key=page_holder(create=True).session_key,
            address=request.remote_addr or "",
            now=now,
        )
    except SlotHeld as error:
        return PageHold(retry_after=error.retry_after)
    except SlotUnavailable:
        return None
    announce_hold_placed(hold, released)
    return PageHold(hold.id, token, iso_z(hold.expires_at))


@bp.route("/<username>/<slug>/book", methods=["GET", "POST"])
@public_booking_limit
@hold_limit
@no_store  # the page carries its hold's token
def confirm(username: str, slug: str):
    """The confirm step: the chosen time (held for this browser while the page is open), the
    guest's details, and the booking itself."""
    event_type = event_type_or_404(username, slug)
    tz, _ = viewer_zone(event_type.expert)
    start = parse_start(request.args.get("start"))
    now = datetime.now(UTC)
    # The expert trying their own link: nothing to book (book_slot refuses it too; this
    # says so before they type anything).
    own = current_user.is_authenticated and current_user.id == event_type.expert_id
    page_hold = hold_for_page(event_type, start, now, own) if request.method == "GET" else None
    if start is None or (request.method == "GET" and page_hold is None):
        mine = start and own_booking_path(event_type, start)
        if mine:  # Back after booking: it is booked, by them
            return render_template(
                "public/already_booked.html",
                event_type=event_type,
                expert=event_type.expert,
                start=start,
                tz=tz,
                booking_path=mine,
                back_url=booking_url(event_type, tz, start),
            )
        flash(GONE_MESSAGE, "error")
        return redirect(booking_url(event_type, tz, start))
    form = BookingForm()
    if own:
        form.form_errors.append(OWN_EVENT_TYPE)
    elif form.validate_on_submit():
        done = submit_booking(event_type, form, start, tz, now)
        if done is not None:
            return done
    elif request.method == "GET":
        prefill(form, event_type)
    held = page_hold is not None and page_hold.retry_after > 0
    return render_template(
        "public/confirm.html",
        event_type=event_type,
        expert=event_type.expert,
        page_hold=page_hold,
        held_minutes=math.ceil(page_hold.retry_after / 60) if held else 0,
        form=form,
        start=start,
        end=start + timedelta(minutes=event_type.duration_minutes),
        tz=tz,
        back_url=booking_url(event_type, tz, start),
        zulu=iso_z,
        own=own,
    ), (409 if held else 200)


def held_message(retry_after: int) -> str:
    minutes = math.ceil(retry_after / 60)
    return HELD_MESSAGE.format(minutes=minutes, s="" if minutes == 1 else "s")


def prefill(form: BookingForm, event_type: EventType) -> None:
    """A fresh form: the signed-in user's details, or what the guest typed for a booking of
    this event type that could not be made (used once); and a new idempotency key."""
    draft = session.get(DRAFT)
    if isinstance(draft, dict) and draft.get("event_type_id") == event_type.id:
        session.pop(DRAFT)
    else:
        draft = {}

    def drafted(name: str) -> str:
        value = draft.get(name, "")
        return value if isinstance(value, str) else ""

    if current_user.is_authenticated:
        form.name.data = current_user.display_name
        form.email.data = current_user.email
    else:
        form.name.data = drafted("name")
        form.email.data = drafted("email")
    form.notes.data = drafted("notes")
    form.drafted_answers(event_type.questions, draft.get("answers"))
    form.idempotency_key.data = secrets.token_urlsafe(16)


def field_errors(start: datetime, form: BookingForm, named_tz: str) -> dict[str, str]:
    """Every field's problem at once, not only the first: the rules stay in one place
    (check_request), asked again with each faulty field replaced by a good value."""
    good = {"name": "Guest", "email": "guest@example.com", "notes": ""}
    values = {name: form[name].data for name in good}
    errors: dict[str, str] = {}
    while len(errors) < len(good):
        try:
            check_request(start, values["name"], values["email"], values["notes"], named_tz)
        except BookingInputError as error:
            if error.field not in good or error.field in errors:
                raise
            errors[error.field] = error.message
            values[error.field] = good[error.field]
        else:
            break
    return errors


def submit_booking(
    event_type: EventType, form: BookingForm, start: datetime, tz: str, now: datetime
) -> Response | None:
    """Book from the submitted form: a redirect, or None to show the form's errors again."""
    # Only a zone the booker named (the page's fallback is the expert's or their own).
    named_tz = request.args.get("tz", "")
    try:
        errors = field_errors(start, form, named_tz)
        for name, message in errors.items():
            form[name].errors.append(message)
        answered = form.read_answers(event_type.questions, request.form)
        if errors or not answered:
            return None
        checked = check_request(
            start, form.name.data, form.email.data, form.notes.data, named_tz, form.answers
        )
        key = check_idempotency_key(form.idempotency_key.data)
    except BookingInputError as error:
        if error.field in ("name", "email", "notes"):
            form[error.field].errors.append(error.message)
        else:  # the hidden key (or the start): nothing the guest can fix in a field
            form.form_errors.append(error.message)
            form.idempotency_key.data = secrets.token_urlsafe(16)
        return None
    try:
        result = book_slot(
            event_type,
            checked,
            client=current_user._get_current_object() if current_user.is_authenticated else None,
            now=now,
            respond=booking_payload,
            idempotency_key=key,
            holder=page_holder(),
        )
    except SlotHeld as error:
        form.form_errors.append(held_message(error.retry_after))
        return None
    except BookingInputError as error:  # the questions changed since the page was read
        if error.field.startswith("answers."):
            form.answer_errors[error.field.removeprefix("answers.")] = error.message
        form.form_errors.append(QUESTIONS_CHANGED)
        return None
    except SlotUnavailable:
        if keep_draft(event_type):
            flash(TAKEN_MESSAGE, "error")
            return redirect(booking_url(event_type, tz, start))
        # Notes too long for the cookie: this very page keeps them, to copy.
        form.form_errors.append(TAKEN_LONG_NOTES)
        return None
    except OwnEventType:
        form.form_errors.append(OWN_EVENT_TYPE)
        return None
    except IdempotencyKeyReused as error:  # the form changed after a submit: a fresh key
        form.form_errors.append(str(error))
        form.idempotency_key.data = secrets.token_urlsafe(16)
        return None
    announce_booked(result)
    # Only the path and query: the answer's absolute URL must not send the guest elsewhere.
    # The guest's zone rides along, so the confirmation shows their own time.
    parts = urlsplit(result.response["manage_url"])
    query = "&".join(filter(None, [parts.query, urlencode({"tz": tz})]))
    path = urlunsplit(("", "", parts.path, query, ""))
    session.pop(DRAFT, None)
    remember_booking(result.booking, path)
    return redirect(path)
