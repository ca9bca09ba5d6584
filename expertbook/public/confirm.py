"""The booking link's confirm step (`/<username>/<slug>/book`): it holds the chosen time for
this browser while the form is filled in, and books it. Its views are on the public
blueprint (routes.py registers them)."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from flask import (
    Response,
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
from ..extensions import db, hold_limit, public_booking_limit
from ..holds import page_holder, place_hold
from ..models import Booking, EventType
from ..realtime import announce_booked, announce_hold_placed
from ..scheduling import iso_z, zone
from ..slots import is_bookable
from .forms import BookingForm
from .routes import DRAFT, bp, event_type_or_404, keep_draft, viewer_zone

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
# The session remembers the last bookings made in this browser (for Back after booking).
BOOKED = "booked_here"
REMEMBERED_BOOKINGS = 10


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
        answered = form.read_answers(event_type.questions, request.form)
        try:
            checked = check_request(
                start, form.name.data, form.email.data, form.notes.data, named_tz,
                form.answers if answered else None,
            )  # fmt: skip
        except BookingInputError as error:
            if error.field not in ("name", "email", "notes"):
                raise
            # Every faulty field at once, not only the first.
            for name, message in field_errors(start, form, named_tz).items():
                form[name].errors.append(message)
            return None
        if not answered:
            return None
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
