"""Holds API: hold a slot while booking it, end the hold, renew it (public; the holder is
the browser session that placed it or whoever sends its `X-Hold-Token`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import jsonify, request

from ..booking import BookingInputError, SlotHeld, SlotUnavailable, UnknownEventType, utc_start
from ..cache_control import no_store
from ..extensions import hold_limit
from ..holds import (
    Holder,
    HoldExpired,
    hold_payload,
    page_holder,
    place_hold,
    release_hold,
    renew_hold,
    token_holder,
)
from ..realtime import (
    announce_hold_placed,
    announce_hold_released,
    announce_slot_held,
    note_renewed,
)
from . import bp
from .auth import api_user
from .errors import ApiError, error_response
from .inputs import invalid, json_object, parse_instant

TOKEN_HEADER = "X-Hold-Token"


def caller() -> Holder:
    """The holder calling: the X-Hold-Token and this browser session's hold key. A signed-in
    browser session must send its CSRF header on writes (api_user checks it)."""
    api_user(required=False)
    by_token = token_holder(request.headers.get(TOKEN_HEADER))
    return Holder(token_hash=by_token.token_hash, session_key=page_holder().session_key)


def held_response(error: SlotHeld):
    """409 slot_held, with the seconds until the time may free up (body and Retry-After)."""
    retry = str(error.retry_after)
    response = error_response(409, "slot_held", str(error), headers={"Retry-After": retry})
    body = response.get_json()
    body["error"]["retry_after"] = error.retry_after
    response.set_data(json.dumps(body))
    return response


@bp.post("/event-types/<int:event_type_id>/holds")
@hold_limit
@no_store
def create_hold(event_type_id: int):
    """Hold a start for a few minutes; this session's or address's other hold of the expert
    ends."""
    body = json_object()
    for name in body:
        if name != "start":
            raise invalid(name, "Unknown field.", code="unknown_field")
    if body.get("start") is None:
        raise invalid("start", "This field is required.", code="missing_field")
    try:
        start = utc_start(parse_instant(body["start"], "start"))
    except BookingInputError as error:
        raise invalid(error.field, error.message) from None
    holder = caller()
    try:
        hold, token, released = place_hold(
            event_type_id,
            start,
            holder_session_key=page_holder(create=True).session_key,
            address=request.remote_addr or "",
            now=datetime.now(UTC),
            holder_token_hash=holder.token_hash,
        )
    except UnknownEventType:
        raise ApiError(404, "not_found", "No such event type.") from None
    except SlotHeld as error:
        return held_response(error)
    except SlotUnavailable as error:
        raise ApiError(409, "slot_unavailable", str(error)) from None
    announce_hold_placed(hold, released)
    return jsonify(hold_payload(hold) | {"hold_token": token}), 201


@bp.delete("/holds/<hold_id>")
def delete_hold(hold_id: str):
    """End a hold (its holder only; anyone else's is "no such hold")."""
    released = release_hold(hold_id, caller())
    if released is None:
        raise ApiError(404, "not_found", "No such hold.")
    hold, free = released
    if free:
        announce_hold_released(hold)
    return "", 204


@bp.post("/holds/<hold_id>/renew")
@no_store
def renew(hold_id: str):
    """Keep a live hold for another few minutes (its holder only); the other pages learn
    its new expiry (slot_held)."""
    try:
        hold = renew_hold(hold_id, caller(), datetime.now(UTC))
    except HoldExpired as error:
        raise ApiError(409, "hold_expired", str(error)) from None
    if hold is None:
        raise ApiError(404, "not_found", "No such hold, or it has expired.")
    note_renewed(hold)
    announce_slot_held(hold)
    return jsonify(hold_payload(hold))
