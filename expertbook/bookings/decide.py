"""The expert's answer to a booking request: the buttons of My Bookings, the booking's page
and the dashboard (signed in), and the one-click links of the request mail (signed, no
sign-in needed; see links.py).

A mail link opens a page with a button (a GET changes nothing: mail scanners follow links),
and it works once, since the second answer finds the request no longer pending.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.routes import safe_next
from ..booking import BookingInputError, BookingStateError
from ..cache_control import no_store
from ..confirmation import (
    NotPending,
    NotTheExpert,
    confirm_booking,
    decline_booking,
    why_not_pending,
)
from ..extensions import db
from ..models import Booking
from ..realtime import announce_slot_released
from .forms import DeclineForm
from .links import BadLink, ExpiredLink, read_decision_token
from .routes import bp


def _booking_of(uid: str) -> Booking | None:
    if not 0 < len(uid) <= 32:
        return None
    return db.session.scalar(sa.select(Booking).where(Booking.uid == uid))


def _answer(booking: Booking, action: str, *, actor, reason: str = "") -> Booking:
    """Confirm or decline; a decline's freed time is announced once committed."""
    now = datetime.now(UTC)
    if action == "confirm":
        return confirm_booking(booking, actor=actor, now=now)
    booking = decline_booking(booking, actor=actor, reason=reason, now=now)
    announce_slot_released(booking)
    return booking


@bp.route("/<uid>/<any(confirm, decline):action>/<token>", methods=["GET", "POST"])
@no_store
def decide(uid: str, action: str, token: str):
    """A mail's one-click link: GET shows the request and a button, POST answers it."""
    page = dict(action=action, form=DeclineForm(), tz="UTC")
    booking = _booking_of(uid)
    try:
        read_decision_token(token, uid, action, datetime.now(UTC))
    except BadLink as error:
        return render_template("bookings/decide.html", problem=str(error), **page), 400
    except ExpiredLink as error:
        if booking is None or booking.is_pending:
            return render_template("bookings/decide.html", problem=str(error), **page), 410
    if booking is None:
        problem = "This booking no longer exists."
        return render_template("bookings/decide.html", problem=problem, **page), 404
    page.update(booking=booking, tz=booking.expert.timezone)
    if not booking.is_pending:
        return render_template("bookings/decide.html", already=why_not_pending(booking), **page)
    if request.method == "GET":
        return render_template("bookings/decide.html", **page)
    form = page["form"]
    if not form.validate_on_submit():
        problem = "The reason is too long (at most 2000 characters)."
        return render_template("bookings/decide.html", problem=problem, **page), 422
    try:
        booking = _answer(booking, action, actor=None, reason=form.reason.data or "")
    except NotPending:
        db.session.rollback()
        booking = db.session.get(Booking, booking.id, populate_existing=True)
        already = why_not_pending(booking)
        return render_template("bookings/decide.html", already=already, **page), 409
    page["booking"] = booking
    return render_template("bookings/decide.html", done=True, **page)


@bp.post("/<uid>/<any(confirm, decline):action>")
@login_required
@no_store
def answer(uid: str, action: str):
    """The signed-in expert's Confirm or Decline button (My Bookings, the booking's page,
    the dashboard); back to where it was pressed."""
    booking = _booking_of(uid)
    if booking is None or booking.expert_id != current_user.id:
        abort(404)  # as unknown as a missing booking, as the booking's page does
    # The page the button was on (only a path of this site), else the booking's page.
    back = safe_next(request.form.get("next"), url_for("bookings.detail", uid=booking.uid))
    form = DeclineForm()
    if not form.validate_on_submit():
        flash("The reason is too long (at most 2000 characters).", "error")
        return redirect(back)
    try:
        _answer(booking, action, actor=current_user, reason=form.reason.data or "")
    except NotTheExpert:
        abort(404)
    except (NotPending, BookingInputError, BookingStateError) as error:
        flash(str(error), "error")
        return redirect(back)
    if action == "confirm":
        flash(f"Confirmed: {booking.name} gets an email with the video link.", "success")
    else:
        flash(f"Declined: {booking.name} gets an email, and the time is free again.", "success")
    return redirect(back)
