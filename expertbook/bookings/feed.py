"""The expert's private calendar subscription feed: /calendar/<secret>.ics."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, render_template
from flask_login import current_user

from ..auth.decorators import expert_required
from ..cache_control import no_store
from ..extensions import db
from ..forms import EmptyForm
from ..ics import calendar_file
from ..models import User, hash_token, new_token
from .queries import upcoming_of_expert

bp = Blueprint("feeds", __name__)
FEED_LIMIT = 1000


@bp.get("/calendar/<secret>.ics")
@no_store
def feed(secret: str):
    """Upcoming bookings of the expert whose secret this is; calendar apps poll it."""
    expert = None
    if 20 <= len(secret) <= 100:
        expert = db.session.scalar(
            sa.select(User).where(User.calendar_secret_hash == hash_token(secret))
        )
    if expert is None or not expert.is_expert:
        abort(404)
    # Requests waiting for the expert too, as TENTATIVE: their time is held.
    upcoming = upcoming_of_expert(
        expert, now=datetime.now(UTC), limit=FEED_LIMIT, blocking_only=True
    )
    body = calendar_file(
        upcoming, current_app.config["BASE_URL"], name=f"ExpertBook: {expert.display_name}"
    )
    return Response(body, content_type="text/calendar; charset=utf-8")


@bp.post("/calendar/regenerate")
@expert_required
@no_store
def regenerate():
    """Make a new feed secret (the old URL stops working) and show it once."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    secret = new_token()
    current_user.calendar_secret_hash = hash_token(secret)
    db.session.commit()
    url = current_app.config["BASE_URL"] + f"/calendar/{secret}.ics"
    return render_template("bookings/feed_created.html", url=url)
