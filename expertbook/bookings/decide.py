"""The expert's answer to a booking request: the buttons of My Bookings, the booking's page
and the dashboard (signed in), and the one-click links of the request mail (signed, no
sign-in needed).

A mail link is bound to the booking's uid and one action, signed with the app's SECRET_KEY,
and expires at the request's deadline; it opens a page with a button (a GET changes nothing:
mail scanners follow links), and it works once, since the second answer finds the request
no longer pending.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..booking import BookingInputError, BookingStateError
from ..cache_control import no_store
from ..confirmation import NotPending, NotTheExpert, confirm_booking, decline_booking
from ..extensions import db
from ..models import Booking
from ..realtime import announce_slot_released
from .forms import DeclineForm
from .routes import bp

ACTIONS = ("confirm", "decline")
_SALT = "expertbook.bookings.decide"
# No request waits longer than the longest horizon: a bound for the signature's age, beside
# the request's own deadline carried in the link.
LINK_MAX_AGE = timedelta(days=731)


class BadLink(Exception):
    """A one-click link that was not made here, was altered, or is for another action."""


class ExpiredLink(Exception):
    """A one-click link past the request's deadline."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=_SALT)


def decision_token(booking: Booking, action: str) -> str:
    """The signed part of a one-click link: the booking's uid, the action, the deadline."""
    until = int(booking.confirm_by.timestamp())
    return _serializer().dumps([booking.uid, action, until])


def decision_url(booking: Booking, action: str) -> str:
    """The absolute one-click link to `action` ("confirm", "decline") the pending `booking`
    (built without a request: the worker builds the mails)."""
    base = current_app.config["BASE_URL"]
    return f"{base}/bookings/{booking.uid}/{action}/{decision_token(booking, action)}"


def read_decision_token(token: str, uid: str, action: str, now: datetime) -> None:
    """Check a one-click link's signed part for this booking and action, at `now`.

    Raises:
        BadLink: not signed here, altered, or for another booking or action.
        ExpiredLink: the request's deadline has passed.
    """
    try:
        link_uid, link_action, until = _serializer().loads(
            token, max_age=int(LINK_MAX_AGE.total_seconds())
        )
    except BadSignature:  # SignatureExpired is one: a link that old is no link of ours
        raise BadLink("This link is not valid.") from None
    except (ValueError, TypeError):
        raise BadLink("This link is not valid.") from None
    if link_uid != uid or link_action != action or not isinstance(until, int):
        raise BadLink("This link is not valid.")
    if now.timestamp() >= until:
        raise ExpiredLink("This link has expired: the time to answer this request has passed.")


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
        return render_template("bookings/decide.html", already=_settled(booking), **page)
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
        return render_template("bookings/decide.html", already=_settled(booking), **page), 409
    page["booking"] = booking
    return render_template("bookings/decide.html", done=True, **page)


def _settled(booking: Booking | None) -> str:
    """What a link used after the answer says."""
    if booking is None:
        return "This booking no longer exists."
    return {
        Booking.CONFIRMED: "This request was already confirmed.",
        Booking.DECLINED: "This request was already declined.",
        Booking.CANCELLED: "This request was cancelled by the booker.",
    }.get(booking.status, "This request is no longer waiting for an answer.")


@bp.post("/<uid>/<any(confirm, decline):action>")
@login_required
@no_store
def answer(uid: str, action: str):
    """The signed-in expert's Confirm or Decline button (My Bookings, the booking's page,
    the dashboard); back to where it was pressed."""
    booking = _booking_of(uid)
    if booking is None or booking.expert_id != current_user.id:
        abort(404)  # as unknown as a missing booking, as the booking's page does
    back = _back_url(booking)
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


def _back_url(booking: Booking) -> str:
    """The page the button was on (only a path of this site), else the booking's page."""
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("bookings.detail", uid=booking.uid)
