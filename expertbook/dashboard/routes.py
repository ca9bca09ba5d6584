"""The expert dashboard: event types, availability, upcoming bookings."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from ..auth.decorators import expert_required
from ..availability import availability_of
from ..bookings.queries import requests_of_expert, upcoming_of_expert
from ..event_types import (
    ARCHIVE,
    INT_FIELDS,
    LOCATIONS,
    BookingCounts,
    EventTypeError,
    booking_counts,
    commit_event_type,
    event_type_url,
    remove_event_type,
    restore_event_type,
    save_event_type,
)
from ..extensions import db
from ..forms import EmptyForm
from ..models import EventType, utcnow
from ..outbox.problems import failed_messages
from ..questions import booking_answers
from ..realtime import announce_slots_changed
from ..scheduling import format_hhmm, zone
from .forms import EventTypeForm

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
UPCOMING_LIMIT = 10
# Booking requests listed at the top (the oldest first past this are on My Bookings).
REQUESTS_LIMIT = 20
# Deliveries given up in the last this many days are listed as problems on the dashboard.
PROBLEM_DAYS = 30


def own_event_type_or_404(event_type_id: int, *, archived: bool = False) -> EventType:
    """The signed-in expert's event type, archived or not as asked; someone else's is as
    unknown as a missing one."""
    event_type = db.session.get(EventType, event_type_id)
    if (
        event_type is None
        or event_type.expert_id != current_user.id
        or event_type.archived != archived
    ):
        abort(404)
    return event_type


def expert_today() -> date:
    """Today's date where the expert works: overrides are dates in the expert's zone."""
    return datetime.now(zone(current_user.timezone)).date()


def format_intervals(intervals) -> str:
    return ", ".join(f"{format_hhmm(start)}–{format_hhmm(end)}" for start, end in intervals)


@bp.get("/")
@expert_required
def index():
    """The expert's booking requests waiting for an answer, event types, weekly hours, next
    bookings and messages that could not be delivered."""
    hours = availability_of(current_user)
    weekly_hours = [
        (name, format_intervals(hours.weekly.get(weekday, ())))
        for weekday, name in enumerate(WEEKDAY_NAMES)
    ]
    today = expert_today()
    upcoming = upcoming_of_expert(
        current_user, now=utcnow(), limit=UPCOMING_LIMIT, blocking_only=True
    )  # the meeting under way is still "upcoming"
    requests = requests_of_expert(current_user, now=utcnow(), limit=REQUESTS_LIMIT)
    base_url = current_app.config["BASE_URL"]
    event_types = current_user.event_types
    counts = booking_counts((e.id for e in event_types), utcnow())
    return render_template(
        "dashboard/index.html",
        event_types=[
            (e, event_type_url(e, base_url), counts.get(e.id, BookingCounts()))
            for e in event_types
            if not e.archived
        ],
        archived=[e for e in event_types if e.archived],
        has_hours=bool(current_user.availability_rules),
        weekly_hours=weekly_hours,
        coming_overrides=sum(1 for o in current_user.date_overrides if o.date >= today),
        upcoming=upcoming,
        requests=[(booking, booking_answers(booking)) for booking in requests],
        locations=LOCATIONS,
        feed_form=EmptyForm(),
        has_feed=current_user.calendar_secret_hash is not None,
        delivery_problems=failed_messages(
            current_user.id, since=utcnow() - timedelta(days=PROBLEM_DAYS)
        ),
        problem_days=PROBLEM_DAYS,
    )


def render_event_type_form(form: EventTypeForm, event_type: EventType | None):
    base_url = current_app.config["BASE_URL"]
    return render_template(
        "dashboard/event_type_form.html",
        form=form,
        event_type=event_type,
        link_prefix=f"{base_url}/{current_user.username}/",
        int_fields=INT_FIELDS,
    )


def save_form(form: EventTypeForm, event_type: EventType | None) -> EventType | None:
    """Save a valid form through the shared rules; on a refusal, put the message on its
    field and return None, with nothing saved."""
    try:
        saved = save_event_type(current_user, form.event_type_data(), event_type)
        commit_event_type()
        announce_slots_changed(current_user.id)
    except EventTypeError as error:
        db.session.rollback()
        if error.field in form:
            form[error.field].errors.append(error.message)
        else:
            form.form_errors.append(error.message)
        return None
    return saved


@bp.route("/event-types/new", methods=["GET", "POST"])
@expert_required
def new_event_type():
    """Create an event type."""
    form = EventTypeForm()
    if form.validate_on_submit() and (event_type := save_form(form, None)):
        flash(f"“{event_type.title}” created. Share its link to get booked.", "success")
        return redirect(url_for("dashboard.index"))
    return render_event_type_form(form, None)


@bp.route("/event-types/<int:event_type_id>/edit", methods=["GET", "POST"])
@expert_required
def edit_event_type(event_type_id: int):
    """Change any field of one of the expert's event types."""
    event_type = own_event_type_or_404(event_type_id)
    form = EventTypeForm(obj=event_type)
    if form.validate_on_submit() and save_form(form, event_type):
        flash(f"“{event_type.title}” saved.", "success")
        return redirect(url_for("dashboard.index"))
    return render_event_type_form(form, event_type)


@bp.post("/event-types/<int:event_type_id>/delete", endpoint="delete_event_type")
@expert_required
def delete_event_type_view(event_type_id: int):
    """Delete an event type never booked, archive one with only past or cancelled bookings;
    one with an upcoming booking stays (the page offers neither)."""
    event_type = own_event_type_or_404(event_type_id)
    if EmptyForm().validate_on_submit():
        title = event_type.title
        try:
            done = remove_event_type(event_type, now=utcnow())
        except EventTypeError as error:
            flash(error.message, "error")
        else:
            announce_slots_changed(current_user.id)
            if done == ARCHIVE:
                flash(f"“{title}” archived. Its bookings keep their details.", "success")
            else:
                flash(f"“{title}” deleted.", "success")
    return redirect(url_for("dashboard.index"))


@bp.post("/event-types/<int:event_type_id>/restore")
@expert_required
def restore_event_type_view(event_type_id: int):
    """Bring an archived event type back to the list, inactive."""
    event_type = own_event_type_or_404(event_type_id, archived=True)
    if EmptyForm().validate_on_submit():
        restore_event_type(event_type)
        db.session.commit()
        flash(f"“{event_type.title}” restored, inactive: activate it to take bookings.", "success")
    return redirect(url_for("dashboard.index"))


@bp.post("/event-types/<int:event_type_id>/toggle")
@expert_required
def toggle_event_type(event_type_id: int):
    """Switch an event type between active (bookable) and inactive."""
    event_type = own_event_type_or_404(event_type_id)
    if EmptyForm().validate_on_submit():
        save_event_type(current_user, {"active": not event_type.active}, event_type)
        db.session.commit()
        announce_slots_changed(current_user.id)
        state = "active: clients can book it" if event_type.active else "inactive: hidden"
        flash(f"“{event_type.title}” is now {state}.", "success")
    return redirect(url_for("dashboard.index"))


# The availability, calendar, token and webhook views register themselves on `bp`.
from . import availability, calendars, tokens, webhooks  # noqa: E402, F401
