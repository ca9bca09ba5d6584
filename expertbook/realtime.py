"""Socket.IO, default namespace.

Clients (the booking page) send:
    join  {"event_type_id": N}  enter room "event-type:N" (an active event type)
    leave {"event_type_id": N}  leave it
    hold  {"hold_id", "hold_token"?}  the confirm page binds its hold to this socket: the
                                hold is renewed now (and on every reconnect, which sends it
                                again) and ends HOLD_DISCONNECT_GRACE_SECONDS (30 s) after
                                the socket goes; the holder is the token or the socket's
                                browser session. Answered
                                with `held` {"hold_id", "start", "end", "expires_at"} (and
                                `slot_held` with the new expiry to the expert's rooms), or
                                `error` unknown_hold (no such live hold of this holder) or
                                hold_expired (it reached its maximum lifetime: place a new
                                one)
The server answers a join with `joined` {"event_type_id", "version"}: `version` is the
expert's schedule version, which every change to what they offer bumps, so a page that
joins again (say on a slow timer) and sees another version knows to re-read its slots.
Right after `joined`, the joining socket alone gets a `slot_held` (the payload below, for
the joined event type) for each live hold of the expert: a page that (re)connects learns
of the holds placed while it was away at once, not at their next renewal.
Clients get `error` {"code", "message"} instead of a dropped connection or silence:
    invalid_payload / unknown_event_type   join or leave could not be honoured
    unknown_hold / hold_expired   hold could not be honoured
    unavailable    the database cannot be reached: try again in `retry_after` seconds
    internal_error anything else a handler could not finish (logged)
    bad_packet     a message that is not a readable Socket.IO packet (bad JSON, nesting too
                   deep, no event name); it is dropped, with one line in the log
    rate_limited   over MESSAGES_PER_SECOND messages in a second: the rest of that second's
                   messages are dropped (one `error` a second, not one a message)

The server sends, after the transaction commits, to the room of every event type of the
expert (one expert cannot be in two sessions at once):
    slot_taken    {"event_type_id", "start", "end"}   a booking took that time
    slot_released {"event_type_id", "start", "end"}   a cancellation (or a hold's end) freed it
    slot_held     {"event_type_id", "start", "end", "expires_at"}
                                                       someone is booking that time (a live
                                                       hold, expertbook/holds.py)
    slots_changed {"event_type_id"}                    anything else changed what it offers
                                                       (a calendar sync): re-read the slots
With REDIS_URL set, emits go through Redis and reach clients on every server process;
events lost while Redis was away are made up for by a `slots_changed` to the rooms that may
have missed them (expertbook/pubsub.py, with `catch_up`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import request
from flask_socketio import emit, join_room, leave_room

from . import holds
from .database import discard_transaction, is_unavailable
from .extensions import db, socketio
from .models import Booking, EventType, Hold, User
from .scheduling import Interval, iso_z
from .slots import holds_not_ended

if TYPE_CHECKING:
    from .booking import BookingResult

MAX_ID = 2**31 - 1
# A booking page sends a join per (re)connect and a leave: 20 a second is far above that.
MESSAGES_PER_SECOND = 20
# After `unavailable`, a page tries again no sooner than this (seconds).
RETRY_AFTER = 5
ROOM_PREFIX = "event-type:"
# At most this many live holds are told to a page that joins, soonest first: a holder has
# one hold at a time, so this is far more than one expert has live (a page re-reads its
# slots anyway when it sees a new schedule version).
MAX_HOLDS_ON_JOIN = 200
_BUDGET = "expertbook.message_budget"  # key in the connection's WSGI environ
# The holds bound to each socket of this process (sid -> hold id -> the expiry that bind
# gave it): they end the disconnect grace after their socket goes, unless renewed since.
_bound_holds: dict[str, dict[str, datetime]] = {}

log = logging.getLogger("expertbook.realtime")


class GuardedJSON:
    """The `json` module Socket.IO and Engine.IO decode packets with (SocketIO(json=...)),
    except that a document nested too deep for the parser ([[[[... 30,000 times) is a
    ValueError, which they treat as a bad packet, instead of a RecursionError."""

    dumps = staticmethod(json.dumps)

    @staticmethod
    def loads(text: str | bytes, *args: Any, **kwargs: Any) -> Any:
        try:
            return json.loads(text, *args, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def guard_messages(server: Any) -> None:
    """Make the Socket.IO `server` (python-socketio) answer each connection's unreadable
    messages with `error` instead of a traceback in its log, and drop messages over the
    connection's budget of MESSAGES_PER_SECOND.

    It wraps the server's dispatch of Engine.IO messages, where packets are decoded: the
    Engine.IO server calls it for every message, and Flask-SocketIO's test client calls
    the same attribute, so both go through the guard. Event handlers run after it, in
    their own tasks, with their own `error` answers."""
    dispatch = server._handle_eio_message

    def guarded(eio_sid: str, data: Any) -> None:
        environ = server.environ.get(eio_sid)
        if environ is not None:
            spent = _spend(environ, time.monotonic())
            if spent > MESSAGES_PER_SECOND:
                if spent == MESSAGES_PER_SECOND + 1:  # one answer a second, not one a message
                    _send_error(server, eio_sid, "rate_limited", "Too many messages; slow down.")
                return
        try:
            dispatch(eio_sid, data)
        except Exception as error:  # noqa: BLE001 - whatever a client's bytes break
            log.warning("socket %s: unreadable message dropped (%s)", eio_sid, error)
            _send_error(server, eio_sid, "bad_packet", "That message could not be read.")

    server._handle_eio_message = guarded
    server.eio.on("message", guarded)


def _spend(environ: dict, now: float) -> int:
    """Count one message in its connection's current second (kept in the connection's WSGI
    environ, which the server drops with the connection); return that second's count."""
    window = environ.get(_BUDGET)
    if window is None or now - window[0] >= 1:
        window = environ[_BUDGET] = [now, 0]
    window[1] += 1
    return window[1]


def _send_error(server: Any, eio_sid: str, code: str, message: str) -> None:
    sid = server.manager.sid_from_eio_sid(eio_sid, "/")
    if sid is not None:  # not connected to the namespace yet: nobody to answer
        server.emit("error", {"code": code, "message": message}, to=sid)


def room_of(event_type_id: int) -> str:
    return f"{ROOM_PREFIX}{event_type_id}"


def catch_up(room: str) -> tuple[str, dict] | None:
    """What a room that may have missed events (Redis was away) is sent: booking pages
    re-read their slots. None for any other room."""
    event_type_id = room.removeprefix(ROOM_PREFIX)
    if event_type_id == room or not event_type_id.isdigit():
        return None
    return "slots_changed", {"event_type_id": int(event_type_id)}


def _event_type_id(payload: Any = None, *extra: Any) -> int | None:
    """The id from the one argument {"event_type_id": N}, or None for anything else."""
    if extra or not isinstance(payload, dict):
        return None
    value = payload.get("event_type_id")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        return None
    return value


def _error(code: str, message: str) -> None:
    emit("error", {"code": code, "message": message})


@socketio.on("join")
def on_join(*args: Any):
    """A booking page subscribes to its event type's room."""
    event_type_id = _event_type_id(*args)
    if event_type_id is None:
        return _error("invalid_payload", 'Send {"event_type_id": <positive integer>}.')
    row = db.session.execute(
        sa.select(EventType.active, EventType.expert_id, User.schedule_version)
        .join(User, User.id == EventType.expert_id)
        .where(EventType.id == event_type_id)
    ).first()
    if row is None or not row.active:
        return _error("unknown_event_type", "No such event type.")
    join_room(room_of(event_type_id))
    emit("joined", {"event_type_id": event_type_id, "version": row.schedule_version})
    # The holds placed while this page was away (or before it first joined): announced
    # to this socket alone, as the room heard of them, so the page shows them held now.
    for hold in holds_not_ended(row.expert_id, datetime.now(UTC), limit=MAX_HOLDS_ON_JOIN):
        emit("slot_held", _in_room(event_type_id, _held(hold.start, hold.end, hold.expires_at)))


@socketio.on_error_default
def on_handler_error(error: Exception):
    """A handler failed (the database away, say): the client hears why, never silence."""
    discard_transaction()
    if is_unavailable(error):
        log.warning("socket handler: database unavailable (%s)", type(error).__name__)
        emit("error", {
            "code": "unavailable",
            "message": "The service is briefly unavailable; trying again.",
            "retry_after": RETRY_AFTER,
        })  # fmt: skip
        return
    log.error("socket handler failed", exc_info=error)
    emit("error", {"code": "internal_error", "message": "Something went wrong on our side."})


@socketio.on("leave")
def on_leave(*args: Any):
    """A booking page unsubscribes."""
    event_type_id = _event_type_id(*args)
    if event_type_id is None:
        return _error("invalid_payload", 'Send {"event_type_id": <positive integer>}.')
    leave_room(room_of(event_type_id))
    emit("left", {"event_type_id": event_type_id})


@socketio.on("hold")
def on_hold(*args: Any):
    """The confirm page binds its hold to this socket (and renews it)."""
    payload = args[0] if len(args) == 1 and isinstance(args[0], dict) else None
    if payload is None or not holds.is_hold_id(payload.get("hold_id")):
        return _error("invalid_payload", 'Send {"hold_id": "<hold id>", "hold_token": "<token>"}.')
    holder = holds.Holder(
        token_hash=holds.token_holder(payload.get("hold_token")).token_hash,
        session_key=holds.page_holder().session_key,
    )
    try:
        hold = holds.renew_hold(payload["hold_id"], holder, datetime.now(UTC))
    except holds.HoldExpired as error:
        return _error("hold_expired", str(error))
    if hold is None:
        return _error("unknown_hold", "No such hold, or it has expired.")
    _bound_holds.setdefault(request.sid, {})[hold.id] = hold.expires_at
    # The other pages learn its new expiry: they show it held until then.
    announce_slot_held(hold)
    emit("held", holds.hold_payload(hold))


def note_renewed(hold: Hold) -> None:
    """A hold was renewed through the API by its page: the page's socket, if bound on this
    process, still stands for it (its going ends the hold a disconnect grace later). A bind
    on another process is not seen here; it is renewed over its socket."""
    for bound in _bound_holds.values():
        if hold.id in bound:
            bound[hold.id] = hold.expires_at


@socketio.on("disconnect")
def on_disconnect(*_args: Any) -> None:
    """A socket went: its holds end a disconnect grace from now, unless the page has bound
    them again on a newer socket, or comes back and does (the sweeper announces them
    released when they end)."""
    bound = _bound_holds.pop(request.sid, None)
    if not bound:
        return
    try:
        holds.shorten_holds(bound, datetime.now(UTC) + holds.disconnect_grace())
    except Exception:  # noqa: BLE001 - the database away: the holds expire on their own
        discard_transaction()
        log.warning("socket %s: could not shorten its holds", request.sid, exc_info=True)


def _event_type_ids(expert_id: int) -> Sequence[int]:
    """The rooms of an expert: one per event type."""
    return db.session.scalars(sa.select(EventType.id).where(EventType.expert_id == expert_id)).all()


def _announce(
    event: str, expert_id: int, payload: dict[str, str], ids: Sequence[int] | None = None
) -> None:
    for event_type_id in _event_type_ids(expert_id) if ids is None else ids:
        # One emit per room: each room's payload names its own event type.
        socketio.emit(event, _in_room(event_type_id, payload), to=room_of(event_type_id))


def _in_room(event_type_id: int, payload: dict[str, str]) -> dict[str, Any]:
    """A slot event's payload as the room of `event_type_id` is told it."""
    return {"event_type_id": event_type_id, **payload}


def _slot(start: datetime, end: datetime) -> dict[str, str]:
    """slot_taken's and slot_released's payload but its room's event type."""
    return {"start": iso_z(start), "end": iso_z(end)}


def _held(start: datetime, end: datetime, expires_at: datetime) -> dict[str, str]:
    """slot_held's payload but its room's event type: what the expert's rooms are told
    (announce_slot_held) and what a joining page is told of each live hold (on_join)."""
    return {**_slot(start, end), "expires_at": iso_z(expires_at)}


def announce_slot_taken(booking: Booking, event_type_ids: Sequence[int] | None = None) -> None:
    """Tell every open booking page of the expert that this time is gone (after commit).
    `event_type_ids`: the expert's event types, when the caller has them."""
    _announce(
        "slot_taken", booking.expert_id, _slot(booking.start_at, booking.end_at), event_type_ids
    )


def announce_slot_released(booking: Booking, freed: Interval | None = None) -> None:
    """Tell every open booking page of the expert that the booking's time (or, after a
    reschedule, its old time, `freed`) is free again (after commit)."""
    freed = freed or Interval(booking.start_at, booking.end_at)
    _announce("slot_released", booking.expert_id, _slot(freed.start, freed.end))


def announce_slot_held(hold: Hold, event_type_ids: Sequence[int] | None = None) -> None:
    """Tell every open booking page of the expert that someone is booking this time (after
    the hold's commit)."""
    payload = _held(hold.start_at, hold.end_at, hold.expires_at)
    _announce("slot_held", hold.expert_id, payload, event_type_ids)


def announce_hold_released(hold: Hold, event_type_ids: Sequence[int] | None = None) -> None:
    """Tell every open booking page of the expert that a hold ended without a booking: its
    time is free again, unless something else blocks it (pages re-read). `event_type_ids`:
    the expert's event types, when the caller has them."""
    _announce("slot_released", hold.expert_id, _slot(hold.start_at, hold.end_at), event_type_ids)


def announce_booked(result: BookingResult) -> None:
    """Tell every open booking page of the expert of a new booking (after its commit):
    its time is taken, and the holder's other holds it ended are released (slot_taken
    covers those it overlaps). A replayed booking tells nobody."""
    if result.replayed:
        return
    booking = result.booking
    announce_slot_taken(booking, result.event_type_ids)
    taken = Interval(booking.start_at, booking.end_at)
    for hold in result.released_holds:
        if not taken.overlaps(Interval(hold.start_at, hold.end_at)):
            announce_hold_released(hold, result.event_type_ids)


def announce_hold_placed(hold: Hold, released: Sequence[Hold]) -> None:
    """Tell every open booking page of the expert of a new hold (after its commit, from
    holds.place_hold's answer): the holds it replaced are released, then its time held."""
    for old in released:
        announce_hold_released(old, hold.event_type_ids)
    announce_slot_held(hold, hold.event_type_ids)


def announce_slots_changed(expert_id: int) -> None:
    """Tell every open booking page of the expert to re-read its slots (after commit)."""
    for event_type_id in _event_type_ids(expert_id):
        socketio.emit("slots_changed", {"event_type_id": event_type_id}, to=room_of(event_type_id))
