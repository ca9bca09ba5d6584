"""A booking's transaction on PostgreSQL in two round trips (and the commit), instead of one
per question: the booking path's cost is mostly per statement, in the ORM and the driver.

1. `read_locked`: the transaction's settings, the UPDATE that takes the expert's row lock
   and bumps their schedule version, then one SELECT, in one multi-statement string. Under
   READ COMMITTED each statement of it takes a fresh snapshot, so the SELECT, which runs
   once the lock is held, sees every booking and hold committed before: the expert, the
   booked event type, the ids of all their event types (the rooms to tell), what is around
   the start (what keeps them busy, the live holds, the holder's own holds of the expert,
   the starts the event type's limits count when it has limits: one subquery, as each
   subquery costs the planner more than running it), the stored answer of the idempotency
   key, their webhook endpoints, whether a calendar receives their bookings, and an id for
   the new booking. A hold (holds.place_hold) runs the same read without those last four.
2. `write_booking`: the booking, its idempotency key, its outbox messages, the DELETE of
   the holder's holds and the NOTIFY that wakes the workers, again one string.

The questions themselves are asked where they are defined (slots.py's busy, holds and
counted queries, the write-back's receiving calendar), compiled once with the expert's and
the event type's ids as columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from psycopg2.extras import Json
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import visitors

from .booking_checks import Holder, Locked
from .calendars.writeback import RECEIVING
from .extensions import db
from .models import Booking, EventType, Hold, IdempotencyKey, User
from .outbox.models import OutboxMessage
from .outbox.queue import NOTIFY_CHANNEL
from .scheduling import Interval
from .slots import (
    LiveHold,
    busy_params,
    busy_query,
    count_params,
    counted_query,
)

_DIALECT = postgresql.psycopg2.dialect()


def _correlated(statement, prefix: str, **columns: str) -> tuple[str, dict[str, Any]]:
    """`statement` as PostgreSQL SQL with the named bind parameters replaced by column
    expressions (the outer query's), and the values of its parameters that have one
    (constants such as a status), renamed with `prefix` so that two statements' never
    collide."""
    constants = iter(range(1000))

    def replace(element):
        if not isinstance(element, sa.BindParameter):
            return None
        if element.key in columns:
            return sa.literal_column(columns[element.key])
        if element.value is not None:
            name = f"{prefix}_{next(constants)}"
            return sa.bindparam(name, element.value, type_=element.type)
        return None

    compiled = visitors.replacement_traverse(statement, {}, replace).compile(dialect=_DIALECT)
    # A list (an IN's values) goes to psycopg2 as a tuple, which it sends as (a, b).
    defaults = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in compiled.params.items()
        if v is not None
    }
    return str(compiled), defaults


def _columns(table: sa.Table, alias: str) -> list[str]:
    return [f'{alias}."{c.name}" AS "{alias}.{c.name}"' for c in table.columns]


_READ: str | None = None
_READ_BOOKING = ""
_READ_DEFAULTS: dict[str, Any] = {}
# What a hold reads instead of what only a booking needs (its idempotency key, the outbox's
# facts, an id from the booking sequence: a hold must not use one up).
_READ_HOLD = "NULL AS earlier, NULL AS endpoints, false AS receiving, 0 AS booking_id"
_READS: dict[bool, str] = {}


def _read_sql(for_hold: bool = False) -> str:
    """The locked read's string: a booking's, or `for_hold` a hold's (see _READ_HOLD)."""
    global _READ, _READ_BOOKING, _READ_DEFAULTS
    sql = _READS.get(for_hold)
    if sql is not None:
        return sql
    if _READ is None:
        busy, busy_defaults = _correlated(busy_query(), "busy", expert_id="u.id")
        counted, counted_defaults = _correlated(counted_query(), "counted", event_type_id="e.id")
        receiving, receiving_defaults = _correlated(RECEIVING, "receiving", expert_id="u.id")
        columns = _columns(User.__table__, "u") + _columns(EventType.__table__, "e")
        _READ = f"""UPDATE "user" SET schedule_version = "user".schedule_version + 1
FROM event_type WHERE event_type.id = %(event_type_id)s AND "user".id = event_type.expert_id;
SELECT {", ".join(columns)},
(SELECT json_agg(json_build_array(t.id, t.buffer_before_minutes, t.buffer_after_minutes)
 ORDER BY t.id) FROM event_type AS t WHERE t.expert_id = u.id) AS rooms,
(SELECT json_agg(a.row) FROM (
 SELECT json_build_array(b.s, b.e, b.before, b.after) FROM ({busy}) AS b(s, e, before, after)
 UNION ALL
 SELECT json_build_array(h.id, h.event_type_id, h.start_at, h.end_at, h.expires_at,
 h.token_hash, h.session_key, h.created_at) FROM slot_hold AS h WHERE h.expert_id = u.id
 AND ((h.expires_at > %(now)s AND h.start_at < %(starts_before)s
  AND h.start_at > %(starts_after)s AND h.end_at > %(ends_after)s)
  OR h.token_hash = %(holder_token)s OR h.session_key = %(holder_session)s)
 UNION ALL
 SELECT json_build_array(c.start_at) FROM ({counted}) AS c(start_at)
 WHERE e.max_per_day IS NOT NULL OR e.max_per_week IS NOT NULL
 UNION ALL
 SELECT json_build_array(h.start_at, h.expires_at) FROM slot_hold AS h
 WHERE (e.max_per_day IS NOT NULL OR e.max_per_week IS NOT NULL) AND h.event_type_id = e.id
 AND h.expires_at > %(now)s AND h.start_at >= %(count_after)s AND h.start_at < %(count_before)s
 AND h.token_hash IS DISTINCT FROM %(holder_token)s
 AND h.session_key IS DISTINCT FROM %(holder_session)s
) AS a(row)) AS around,
{{booking}}
FROM event_type AS e JOIN "user" AS u ON u.id = e.expert_id WHERE e.id = %(event_type_id)s"""
        _READ_BOOKING = f"""(SELECT json_build_array(k.request_hash, k.booking_id, k.response)
 FROM idempotency_key AS k WHERE k.event_type_id = e.id AND k.key = %(idempotency_key)s)
 AS earlier,
(SELECT json_agg(json_build_array(w.id, w.events)) FROM webhook_endpoint AS w
 WHERE w.expert_id = u.id) AS endpoints,
EXISTS ({receiving}) AS receiving,
nextval(pg_get_serial_sequence('booking', 'id')) AS booking_id"""
        _READ_DEFAULTS = {
            **busy_defaults,
            **counted_defaults,
            **receiving_defaults,
        }
    sql = _READS[for_hold] = _READ.replace("{booking}", _READ_HOLD if for_hold else _READ_BOOKING)
    return sql


def warm_up() -> None:
    """Compile the statements and build the column lists once, at start."""
    _read_sql()
    _read_sql(for_hold=True)
    for cls in (User, EventType):
        _processors(cls)
    _write_sql(with_key=False, messages=2)


def read_locked(
    settings: str,
    event_type_id: int,
    start: datetime,
    idempotency_key: str | None,
    holder: Holder,
    now: datetime,
    for_hold: bool = False,
) -> Locked | None:
    """Lock the expert of `event_type_id` and read what a booking of `start` by `holder` at
    `now` needs (see the module's docstring); None when there is no such event type.
    `settings`: the transaction's SET LOCAL statements, sent first. `for_hold`: what a
    hold needs, without what only a booking does (no idempotency key, outbox facts or
    booking id: `earlier` None, `booking_id` 0)."""
    sql = _read_sql(for_hold)
    upper = start + timedelta(minutes=1)
    params = {
        **_READ_DEFAULTS,
        # A slot starting at `start` ends within the longest duration: the busy query's
        # range covers every event type's slot.
        **busy_params(start, upper),
        **count_params(start, upper),
        "now": now,
        "event_type_id": event_type_id,
        "idempotency_key": idempotency_key,
        # NULL matches nothing: nobody's holds are theirs.
        "holder_token": holder.token_hash or None,
        "holder_session": holder.session_key or None,
    }
    if settings:
        sql = f"{settings};\n{sql}"
    result = db.session.connection().exec_driver_sql(sql, params)
    row = result.fetchone()
    if row is None:
        return None
    values = dict(zip(result.keys(), row, strict=True))
    expert = adopt(User, values, "u.")
    event_type = adopt(EventType, values, "e.")
    rooms = values["rooms"] or ()
    buffers = {type_id: (before, after) for type_id, before, after in rooms}
    busy, holds, own_holds, counted, counted_holds = _around(
        values["around"] or (), expert.id, buffers, holder
    )
    earlier = values["earlier"]
    known = {
        "webhook_endpoints": [(i, events) for i, events in values["endpoints"] or ()],
        "receiving_calendar": values["receiving"],
    }
    return Locked(
        expert=expert,
        event_type=event_type,
        event_type_ids=tuple(type_id for type_id, _, _ in rooms),
        busy=busy,
        earlier=tuple(earlier) if earlier is not None else None,
        known=known,
        booking_id=values["booking_id"],
        holds=holds,
        own_holds=own_holds,
        counted=counted,
        counted_holds=counted_holds,
    )


def _around(
    rows: list[list],
    expert_id: int,
    buffers: dict[int, tuple[int, int]],
    holder: Holder,
) -> tuple[
    list[Interval], list[LiveHold], list[Hold], list[datetime], list[tuple[datetime, datetime]]
]:
    """The `around` column's rows, told apart by their length (see _read_sql): what keeps
    the expert busy, the live holds of others around the start (widened by their event
    type's `buffers`), the holder's own holds, the starts the limits count, and the others'
    live holds they count too."""
    minute = timedelta(minutes=1)
    busy: list[Interval] = []
    holds: list[LiveHold] = []
    own_holds: list[Hold] = []
    counted: list[datetime] = []
    counted_holds: list[tuple[datetime, datetime]] = []
    for row in rows:
        if len(row) == 4:
            s, e, before, after = row
            busy.append(Interval(_instant(s) - minute * before, _instant(e) + minute * after))
        elif len(row) == 1:
            counted.append(_instant(row[0]))
        elif len(row) == 2:
            counted_holds.append((_instant(row[0]), _instant(row[1])))
        else:
            id_, type_id, s, e, x, token, session_key, created = row
            hold = Hold(
                id=id_,
                expert_id=expert_id,
                event_type_id=type_id,
                start_at=_instant(s),
                end_at=_instant(e),
                expires_at=_instant(x),
                token_hash=token,
                session_key=session_key,
                created_at=_instant(created),
            )
            if holder.owns(hold):
                # A plain object, not the session's: the row is deleted with the booking.
                own_holds.append(hold)
                continue
            # Not the holder's: then it is live and around the start (the query's other
            # condition).
            before, after = buffers[type_id]
            holds.append(
                LiveHold(
                    id=id_,
                    event_type_id=type_id,
                    start=hold.start_at,
                    end=hold.end_at,
                    blocks=Interval(hold.start_at - minute * before, hold.end_at + minute * after),
                    expires_at=hold.expires_at,
                    token_hash=token,
                    session_key=session_key,
                )
            )
    return busy, holds, own_holds, counted, counted_holds


def _instant(text: str) -> datetime:
    """A timestamptz inside json (ISO 8601 with an offset) as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


_PROCESSORS: dict[type, list[tuple[str, str, Any]]] = {}


def _processors(cls) -> list[tuple[str, str, Any]]:
    """(attribute, column, result processor or None) for each column of `cls`'s table."""
    found = _PROCESSORS.get(cls)
    if found is None:
        mapper = sa.inspect(cls)
        found = [
            (
                mapper.get_property_by_column(column).key,
                column.name,
                column.type._cached_result_processor(_DIALECT, None),
            )
            for column in cls.__table__.columns
        ]
        _PROCESSORS[cls] = found
    return found


def adopt(cls, values: dict[str, Any], prefix: str = ""):
    """The persistent object of `cls` in the session with the row's `values` (columns as
    keys, after `prefix`), as if loaded with populate_existing: the session's own object
    when it has one, refreshed, else a new one; no query."""
    session = db.session()
    processed = {}
    for attribute, column, process in _processors(cls):
        value = values[prefix + column]
        processed[attribute] = process(value) if process is not None else value
    key = session.identity_key(cls, (processed["id"],))
    obj = session.identity_map.get(key)
    if obj is not None:
        for attribute, value in processed.items():
            set_committed_value(obj, attribute, value)
        return obj
    obj = sa.inspect(cls).class_manager.new_instance()
    for attribute, value in processed.items():
        set_committed_value(obj, attribute, value)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


_WRITES: dict[tuple[bool, int, bool], str] = {}


def _written(table: sa.Table) -> list[sa.Column]:
    """The columns an INSERT gives: all but a generated id (the booking's is read first)."""
    return [c for c in table.columns if c.name != "id" or table is Booking.__table__]


def _insert_sql(table: sa.Table, tags: list[str]) -> str:
    columns = _written(table)
    names = ", ".join(f'"{c.name}"' for c in columns)
    rows = ",\n".join("(" + ", ".join(f"%({tag}_{c.name})s" for c in columns) + ")" for tag in tags)
    return f'INSERT INTO "{table.name}" ({names}) VALUES {rows}'


def _write_sql(with_key: bool, messages: int, with_holds: bool = False) -> str:
    sql = _WRITES.get((with_key, messages, with_holds))
    if sql is None:
        parts = [_insert_sql(Booking.__table__, ["b"])]
        if with_key:
            parts.append(_insert_sql(IdempotencyKey.__table__, ["k"]))
        if with_holds:
            parts.append('DELETE FROM "slot_hold" WHERE id = ANY(%(released_holds)s)')
        if messages:
            tags = [f"m{i}" for i in range(messages)]
            parts.append(_insert_sql(OutboxMessage.__table__, tags))
            parts.append(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')")
        sql = _WRITES[(with_key, messages, with_holds)] = ";\n".join(parts)
    return sql


def _bind(table: sa.Table, tag: str, values: dict[str, Any], params: dict[str, Any]) -> None:
    for column in _written(table):
        value = values[column.name]
        if value is not None and isinstance(column.type, sa.JSON):
            value = Json(value, dumps=json.dumps)
        params[f"{tag}_{column.name}"] = value


def write_booking(
    booking: dict[str, Any],
    key: dict[str, Any] | None,
    messages: list[dict[str, Any]],
    released_holds: list[str] = (),
) -> None:
    """INSERT the booking (its column values, id included), its idempotency key (None: no
    key), its outbox messages, DELETE the holds of `released_holds` (ids), and NOTIFY the
    workers: one round trip."""
    params: dict[str, Any] = {"released_holds": list(released_holds)}
    _bind(Booking.__table__, "b", booking, params)
    if key is not None:
        _bind(IdempotencyKey.__table__, "k", key, params)
    for i, message in enumerate(messages):
        _bind(OutboxMessage.__table__, f"m{i}", message, params)
    sql = _write_sql(key is not None, len(messages), bool(released_holds))
    db.session.connection().exec_driver_sql(sql, params)
