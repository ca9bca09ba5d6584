"""Public pages: the expert's page and the shareable booking link."""

import sqlalchemy as sa
from flask import Blueprint, abort, render_template

from ..extensions import db
from ..models import EventType, User

bp = Blueprint("public", __name__)


def expert_or_404(username: str) -> User:
    expert = db.session.scalar(sa.select(User).where(User.username == username.lower()))
    if expert is None or not expert.is_expert:
        abort(404)
    return expert


@bp.get("/")
def home():
    """The landing page."""
    return render_template("public/home.html")


@bp.get("/<username>")
def expert_page(username: str):
    """The expert's card and active event types."""
    expert = expert_or_404(username)
    event_types = [e for e in expert.event_types if e.active]
    return render_template("public/expert.html", expert=expert, event_types=event_types)


@bp.get("/<username>/<slug>")
def booking_page(username: str, slug: str):
    """The shareable booking link."""
    expert = expert_or_404(username)
    event_type = db.session.scalar(
        sa.select(EventType).where(EventType.expert_id == expert.id, EventType.slug == slug)
    )
    if event_type is None or not event_type.active:
        abort(404)
    return render_template("public/booking.html", expert=expert, event_type=event_type)
