"""My Bookings, a booking's page, its calendar file, cancel and reschedule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from ..booking import (
    NOT_OFFERED,
    BookingInputError,
    BookingStateError,
    SlotUnavailable,
    cancel_booking,
    reschedule_booking,
)
from ..cache_control import no_store
from ..ics import calendar_file
from ..models import Booking
from ..questions import booking_answers
from ..realtime import announce_slot_released, announce_slot_taken
from ..scheduling import is_valid_timezone, zone
from ..slots import slots_for
from .access import booking_or_404
from .forms import CancelForm, DeclineForm, RescheduleForm
from .queries import ROLES, BadCursor, Position, booking_page, make_cursor, read_cursor

bp = Blueprint("bookings", __name__, url_prefix="/bookings")
PER_PAGE = 20


@bp.get("")
@login_required
def index():
    """My Bookings: sessions as client and as expert, upcoming or past, a page at a time."""
    scope = "past" if request.args.get("scope") == "past" else "upcoming"
    now = datetime.now(UTC)
    after, backwards = None, False
    if cursor := request.args.get("cursor"):
        try:
            after, backwards = read_cursor(cursor, ROLES, scope)
        except BadCursor:
            flash("That page link no longer works; here is the first page.", "error")
    listing = {"roles": ROLES, "scope": scope, "now": now, "limit": PER_PAGE}
    page = booking_page(current_user, after=after, backwards=backwards, **listing)
    if backwards and not page.more:  # back at the start: show the first page, full
        after, backwards = None, False
        page = booking_page(current_user, **listing)
    bookings = page.bookings
    newer = older = None
    if after is not None:
        start = Position.of(bookings[0]) if bookings else after
        newer = make_cursor(ROLES, scope, start, backwards=True)
    if bookings and (page.more or backwards):
        older = make_cursor(ROLES, scope, Position.of(bookings[-1]))
    return render_template(
        "bookings/index.html",
        bookings=bookings,
        scope=scope,
        newer_cursor=newer,
        next_cursor=older,
        now=now,
    )


def _links(booking, token) -> dict[str, str]:
    """url_for keyword arguments that keep a guest's token (and chosen zone) on every link."""
    links = {"uid": booking.uid}
    if token:
        links["token"] = token
    tz = request.args.get("tz", "")
    if is_valid_timezone(tz):
        links["tz"] = tz
    return links


def manage_url(booking, token: str | None) -> str | None:
    """The guest's absolute link to this booking, when the request came with its token."""
    if not token:
        return None
    return current_app.config["BASE_URL"] + url_for("bookings.detail", uid=booking.uid, token=token)


def viewer_tz(booking) -> str:
    """The zone the page was asked for (?tz=), else the signed-in user's, else (a guest
    with the manage link) the one the booking was made in."""
    tz = request.args.get("tz", "")
    if is_valid_timezone(tz):
        return tz
    return current_user.timezone if current_user.is_authenticated else booking.booker_timezone


@bp.get("/<uid>")
@no_store
def detail(uid: str):
    """A booking's page, for its participants or the holder of its manage link."""
    booking, token = booking_or_404(uid)
    return render_template(
        "bookings/detail.html",
        booking=booking,
        token=token,
        tz=viewer_tz(booking),
        cancel_form=CancelForm(),
        decline_form=DeclineForm(),
        answers=_answers_for_expert(booking),
        links=_links(booking, token),
        now=datetime.now(UTC),
    )


def _answers_for_expert(booking) -> list[tuple[str, str]]:
    """The booker's answers, shown to the booking's expert only (never on the booker's or a
    guest's view of the page)."""
    if not (current_user.is_authenticated and current_user.id == booking.expert_id):
        return []
    return booking_answers(booking)


@bp.get("/<uid>.ics")
@no_store
def ics(uid: str):
    """The booking's calendar file (METHOD:PUBLISH)."""
    booking, token = booking_or_404(uid)
    body = calendar_file(
        [booking], current_app.config["BASE_URL"], manage_url=manage_url(booking, token)
    )
    return Response(
        body,
        content_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="booking-{booking.uid}.ics"'},
    )


@bp.post("/<uid>/cancel")
@no_store
def cancel(uid: str):
    """Cancel the booking, by either participant or the manage-link holder."""
    booking, token = booking_or_404(uid, to_change=True)
    form = CancelForm()
    if not form.validate_on_submit():
        flash("The reason is too long (at most 2000 characters).", "error")
        return redirect(url_for("bookings.detail", **_links(booking, token)))
    try:
        changed = cancel_booking(
            booking,
            reason=form.reason.data or "",
            now=datetime.now(UTC),
            manage_url=manage_url(booking, token),
        )
    except (BookingInputError, BookingStateError) as error:
        flash(str(error), "error")
        return redirect(url_for("bookings.detail", **_links(booking, token)))
    if changed:
        announce_slot_released(booking)
        flash("The booking is cancelled; both of you get an email.", "success")
    return redirect(url_for("bookings.detail", **_links(booking, token)))


@bp.route("/<uid>/reschedule", methods=["GET", "POST"])
@no_store
def reschedule(uid: str):
    """Pick a new time from the same event type's free slots (while it is still offered)."""
    booking, token = booking_or_404(uid, to_change=True)
    now = datetime.now(UTC)
    if booking.status not in Booking.BLOCKING or booking.start_at <= now:
        flash("Only upcoming bookings can be moved.", "error")
        return redirect(url_for("bookings.detail", **_links(booking, token)))
    if not booking.event_type.active:
        flash(f"{NOT_OFFERED} You can still cancel it.", "error")
        return redirect(url_for("bookings.detail", **_links(booking, token)))
    tz = viewer_tz(booking)
    form = RescheduleForm()
    if form.validate_on_submit():
        try:
            old = reschedule_booking(
                booking, form.start.data, now=now, manage_url=manage_url(booking, token)
            )
        except (SlotUnavailable, BookingStateError, BookingInputError) as error:
            flash(f"{error} Please pick another time.", "error")
        else:
            announce_slot_released(booking, old)
            announce_slot_taken(booking)
            flash("The booking is moved; both of you get an updated invite.", "success")
            return redirect(url_for("bookings.detail", **_links(booking, token)))
    day = _day_param(request.args.get("date"), booking, tz)
    slots = [
        slot
        for slot in slots_for(
            booking.event_type,
            day_from=day,
            day_to=day,
            viewer_tz=tz,
            now=now,
            except_booking_id=booking.id,
        )
        if slot.start != booking.start_at  # its own time is no move
    ]
    return render_template(
        "bookings/reschedule.html",
        booking=booking,
        token=token,
        tz=tz,
        day=day,
        slots=slots,
        form=form,
        # Neither into the past nor beyond what the event type lets clients book.
        previous_day=day - timedelta(days=1) if day > now.astimezone(zone(tz)).date() else None,
        next_day=day + timedelta(days=1) if day < last_bookable_day(booking, tz, now) else None,
        links=_links(booking, token),
    )


def last_bookable_day(booking, tz: str, now: datetime) -> date:
    """The viewer's local date of the event type's booking horizon."""
    horizon = now + timedelta(days=booking.event_type.max_days_ahead)
    return horizon.astimezone(zone(tz)).date()


def _day_param(value: str | None, booking, tz: str) -> date:
    try:
        day = date.fromisoformat(value or "")
    except ValueError:
        day = None
    if day is None or day in (date.min, date.max):  # the calendar's ends have no neighbours
        return booking.start_at.astimezone(zone(tz)).date()
    return day


# The expert's answers to booking requests register themselves on `bp`.
from . import decide  # noqa: E402, F401
