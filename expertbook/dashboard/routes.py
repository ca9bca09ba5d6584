"""The expert dashboard: event types, availability, upcoming bookings."""

from functools import wraps

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


def expert_required(view):
    """Signed-in experts only; a client is sent to the profile's Become an Expert button."""

    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_expert:
            flash("Become an expert first to open the dashboard.", "info")
            return redirect(url_for("account.profile"))
        return view(*args, **kwargs)

    return wrapper


@bp.get("/")
@expert_required
def index():
    """The expert's event types."""
    return render_template("dashboard/index.html", event_types=current_user.event_types)
