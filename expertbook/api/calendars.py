"""Connected calendars over the API (experts): list, connect, choose, sync, remove.
Credentials are write-only: no answer ever carries the password."""

from __future__ import annotations

from flask import jsonify, request

from ..cache_control import no_store
from ..calendars.connections import connect_calendar, remove_connection, update_calendars
from ..calendars.models import CalendarConnection
from ..calendars.queries import busy_count, connection_of, connections_of
from ..calendars.sync import SyncBusy, sync_now
from ..errors import FieldError
from ..models import User, utcnow
from ..realtime import announce_slots_changed
from ..scheduling import iso_z
from . import bp
from .auth import expert_api_user
from .errors import ApiError
from .inputs import invalid, json_object

CONNECT_FIELDS = {"kind", "url", "username", "password"}


def connection_payload(connection: CalendarConnection) -> dict:
    payload = {
        "id": connection.id,
        "kind": connection.kind,
        "url": connection.url,
        "status": connection.status,
        "last_synced_at": iso_z(connection.last_synced_at) if connection.last_synced_at else None,
        "calendars": [
            {"id": c.id, "name": c.name, "blocks": c.blocks, "writes": c.writes}
            for c in connection.calendars
        ],
    }
    if connection.status == "error":
        payload["error"] = connection.error
    return payload


def own_connection(expert: User, connection_id: int) -> CalendarConnection:
    connection = connection_of(expert.id, connection_id)
    if connection is None:
        raise ApiError(404, "not_found", "No such calendar connection.")
    return connection


def _synced(connection: CalendarConnection):
    """sync_now, a sync that another one kept waiting too long answered 503."""
    try:
        return sync_now(connection)
    except SyncBusy as error:
        raise ApiError(503, "busy", str(error)) from None


@bp.get("/calendars")
@no_store  # a feed's address is its secret
def list_calendars():
    """The caller's connected calendars."""
    expert = expert_api_user()
    return jsonify(calendars=[connection_payload(c) for c in connections_of(expert.id)])


@bp.post("/calendars")
@no_store
def create_calendar():
    """Connect a CalDAV account or an ICS feed; answers after a first sync (422 when it
    cannot be read, and nothing is stored)."""
    expert = expert_api_user()
    body = json_object()
    for name in body:
        if name not in CONNECT_FIELDS:
            raise invalid(name, "Unknown field.", code="unknown_field")
    try:
        connection = connect_calendar(
            expert,
            body.get("kind"),
            body.get("url"),
            body.get("username", ""),
            body.get("password", ""),
            now=utcnow(),
        )
    except FieldError as error:
        raise invalid(error.field, error.message, error.code) from None
    announce_slots_changed(expert.id)
    return jsonify(connection_payload(connection)), 201


@bp.patch("/calendars/<int:connection_id>")
@no_store
def change_calendars(connection_id: int):
    """Choose which calendars block time and which one receives bookings."""
    expert = expert_api_user()
    connection = own_connection(expert, connection_id)
    body = json_object()
    for name in body:
        if name != "calendars":
            raise invalid(name, "Unknown field.", code="unknown_field")
    changes = body.get("calendars")
    if not isinstance(changes, list):
        raise invalid("calendars", 'A list of {"id", "blocks"?, "writes"?}.')
    try:
        changed, started = update_calendars(connection, changes)
    except FieldError as error:
        raise invalid(error.field, error.message, error.code) from None
    if started:  # a calendar that starts blocking needs its busy times read
        changed |= _synced(connection).changed
    if changed:
        announce_slots_changed(expert.id)
    return jsonify(connection_payload(connection))


@bp.delete("/calendars/<int:connection_id>")
def delete_calendar(connection_id: int):
    """Disconnect; its busy times stop blocking at once."""
    expert = expert_api_user()
    if remove_connection(own_connection(expert, connection_id)):
        announce_slots_changed(expert.id)
    return "", 204


@bp.post("/calendars/<int:connection_id>/sync")
def sync_calendar(connection_id: int):
    """Re-read the connection now; answers once the sync is done."""
    expert = expert_api_user()
    connection = own_connection(expert, connection_id)
    if request.get_data():
        json_object()  # a body, if any, must still be JSON
    result = _synced(connection)
    if result.changed:
        announce_slots_changed(expert.id)
    current = result.connection
    if current is None:  # removed meanwhile
        raise ApiError(404, "not_found", "No such calendar connection.")
    return jsonify(
        busy_count=busy_count(current.id),
        status=current.status,
        last_synced_at=iso_z(current.last_synced_at) if current.last_synced_at else None,
        **({"error": current.error} if current.status == "error" else {}),
    )
