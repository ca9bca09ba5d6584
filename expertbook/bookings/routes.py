"""My Bookings."""

from flask import Blueprint, render_template
from flask_login import login_required

bp = Blueprint("bookings", __name__, url_prefix="/bookings")


@bp.get("")
@login_required
def index():
    """The signed-in user's sessions."""
    return render_template("bookings/index.html")
