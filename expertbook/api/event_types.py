"""Event types over the API: an expert manages their own; anyone lists an expert's active ones."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, jsonify

from ..event_types import (
    EventTypeError,
    commit_event_type,
    event_type_payload,
    event_type_url,
    remove_event_type,
    save_event_type,
)
from ..extensions import db
from ..models import EventType, User, utcnow
from ..realtime import announce_slots_changed
from . import bp
from .auth import expert_api_user
from .errors import ApiError
from .inputs import invalid, json_object


def own_event_type(expert: User, event_type_id: int) -> EventType:
    """The caller's event type; another expert's, or an archived one (DELETE removed it),
    is as unknown as a missing one."""
    event_type = db.session.get(EventType, event_type_id)
    if event_type is None or event_type.expert_id != expert.id or event_type.archived:
        raise ApiError(404, "not_found", "No such event type.")
    return event_type


def rejected(error: EventTypeError) -> ApiError:
    """The API error for a refused change: a booked type is a conflict, the rest bad fields."""
    if error.code == "has_upcoming_bookings":
        return ApiError(409, error.code, error.message)
    if error.code == "not_found":
        return ApiError(404, error.code, "No such event type.")
    return invalid(error.field, error.message, error.code)


def payload(event_type: EventType) -> dict:
    return event_type_payload(event_type, current_app.config["BASE_URL"])


@bp.get("/event-types")
def list_event_types():
    """The caller's event types, active or not (archived ones are gone for the API)."""
    expert = expert_api_user()
    return jsonify(
        event_types=[payload(e) for e in expert.event_types if not e.archived],
    )


@bp.post("/event-types")
def create_event_type():
    """A new event type of the caller's; unset fields take their defaults."""
    expert = expert_api_user()
    data = json_object()
    try:
        event_type = save_event_type(expert, data)
        commit_event_type()
    except EventTypeError as error:
        raise rejected(error) from None
    return jsonify(payload(event_type)), 201


@bp.get("/event-types/<int:event_type_id>")
def get_event_type(event_type_id: int):
    """One of the caller's event types."""
    return jsonify(payload(own_event_type(expert_api_user(), event_type_id)))


@bp.patch("/event-types/<int:event_type_id>")
def update_event_type(event_type_id: int):
    """Change the given fields of one of the caller's event types."""
    expert = expert_api_user()
    event_type = own_event_type(expert, event_type_id)
    data = json_object()
    try:
        save_event_type(expert, data, event_type)
        commit_event_type()
    except EventTypeError as error:
        raise rejected(error) from None
    announce_slots_changed(expert.id)  # open booking pages re-read their slots
    return jsonify(payload(event_type))


@bp.delete("/event-types/<int:event_type_id>")
def delete_event_type(event_type_id: int):
    """Remove one of the caller's event types: deleted if never booked, archived if it has
    only past or cancelled bookings (they keep their pages), 409 while one is upcoming."""
    expert = expert_api_user()
    event_type = own_event_type(expert, event_type_id)
    try:
        remove_event_type(event_type, now=utcnow())
    except EventTypeError as error:
        raise rejected(error) from None
    announce_slots_changed(expert.id)  # its open pages learn it is gone
    return "", 204


@bp.get("/experts/<username>/event-types")
def public_event_types(username: str):
    """An expert's active event types, for anyone."""
    expert = db.session.scalar(sa.select(User).where(User.username == username.lower()))
    if expert is None or not expert.is_expert:
        raise ApiError(404, "not_found", "No such expert.")
    base_url = current_app.config["BASE_URL"]
    event_types = db.session.scalars(
        sa.select(EventType)
        .where(EventType.expert_id == expert.id, EventType.active)
        .order_by(EventType.id)
    )
    return jsonify(
        event_types=[
            {
                "id": event_type.id,
                "slug": event_type.slug,
                "title": event_type.title,
                "duration_minutes": event_type.duration_minutes,
                "description": event_type.description,
                "url": event_type_url(event_type, base_url),
                # What a booker must know before booking: whether the expert confirms by
                # hand, and the questions to answer (`answers` of a booking).
                "requires_confirmation": event_type.requires_confirmation,
                "questions": event_type.questions or [],
            }
            for event_type in event_types
        ]
    )
