"""My Bookings, a booking's page and its calendar file."""

from flask import Blueprint, Response, current_app, render_template
from flask_login import login_required

from ..ics import calendar_file
from .access import booking_or_404

bp = Blueprint("bookings", __name__, url_prefix="/bookings")


@bp.get("")
@login_required
def index():
    """The signed-in user's sessions."""
    return render_template("bookings/index.html")


@bp.get("/<uid>")
def detail(uid: str):
    """A booking's page, for its participants or the holder of its manage link."""
    booking, token = booking_or_404(uid)
    return render_template("bookings/detail.html", booking=booking, token=token)


@bp.get("/<uid>.ics")
def ics(uid: str):
    """The booking's calendar file (METHOD:PUBLISH)."""
    booking, _token = booking_or_404(uid)
    body = calendar_file([booking], current_app.config["BASE_URL"])
    return Response(
        body,
        content_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="booking-{booking.uid}.ics"'},
    )
