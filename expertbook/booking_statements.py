"""A booking's transaction on PostgreSQL in two round trips, its BEGIN and COMMIT included
(database.InBand), instead of one per question: the booking path's cost is mostly per
statement, in the ORM and the driver.

1. `read_locked`: the transaction's BEGIN and settings, the UPDATE that takes the
   expert's row lock and bumps their schedule version, then one SELECT, in one
   multi-statement string. Under READ COMMITTED each statement of it takes a fresh
   snapshot, so the SELECT, which runs once the lock is held, sees every booking and hold
   committed before: the expert, the booked event type, the ids of all their event types
   (the rooms to tell), what is around the start (what keeps them busy within reach of
   the booked slot, its buffers and theirs included, the live holds, the holder's own
   holds of the expert, the starts the event type's limits count when it has limits: one
   subquery, as each subquery costs the planner more than running it), the
   stored answer of the idempotency key, their webhook endpoints, whether a calendar
   receives their bookings, and an id for the new booking. A hold (holds.place_hold) runs
   the same read without those last four.
2. `write_booking`: the booking, its idempotency key, its outbox messages, the DELETE of
   the holder's holds, when one is due the NOTIFY that wakes the workers, and the COMMIT,
   again one string.

The questions themselves are asked where they are defined (slots.py's busy, holds and
counted queries, the write-back's receiving calendar), compiled once with the expert's and
the event type's ids as columns.

The UPDATE and the SELECT are server-side prepared statements, each connection preparing
them in the round trip of its first booking (`run_prepared`), and run with a generic plan
(the connection's plan_cache_mode: database._session_settings):
planning the SELECT cost PostgreSQL about three times the CPU of running it (1.5 ms of
its 1.6 ms a booking, against 0.3 ms prepared), on the same cores as the app."""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import sqlalchemy as sa
from psycopg2.extensions import adapt
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.sql import visitors

from .availability import availability_of
from .booking_checks import Holder, Locked
from .calendars.writeback import RECEIVING
from .database import InBand, deadline, discard_transaction
from .extensions import db
from .models import Booking, EventType, Hold, IdempotencyKey, User
from .outbox.models import OutboxMessage
from .outbox.queue import NOTIFY_CHANNEL, committed, notify_due
from .scheduling import Availability, Interval
from .slots import (
    LiveHold,
    busy_params,
    busy_query,
    count_params,
    counted_query,
)

_DIALECT = postgresql.psycopg2.dialect()


def _correlated(statement, **columns: str) -> str:
    """`statement` as PostgreSQL SQL with the named bind parameters replaced by column
    expressions (the outer query's), and those that have a value (constants such as a
    status) written in as literals: what is left are the caller's `%(name)s` parameters."""
    constants: dict[str, Any] = {}

    def replace(element):
        if not isinstance(element, sa.BindParameter):
            return None
        if element.key in columns:
            return sa.literal_column(columns[element.key])
        if element.value is not None:
            name = f"constant_{len(constants)}"
            constants[name] = element.value
            return sa.bindparam(name, element.value, type_=element.type)
        return None

    compiled = visitors.replacement_traverse(statement, {}, replace).compile(dialect=_DIALECT)
    sql = str(compiled)
    for name, value in constants.items():
        # A list (an IN's values) as a tuple, which psycopg2 writes as (a, b).
        value = tuple(value) if isinstance(value, list) else value
        sql = sql.replace(f"%({name})s", adapt(value).getquoted().decode())
    return sql


@dataclass(frozen=True)
class Prepared:
    """A server-side prepared statement: PREPARE once per connection, then EXECUTE."""

    name: str
    prepare: str
    execute: str


def prepared(name: str, sql: str) -> Prepared:
    """`sql`, whose parameters are psycopg2's `%(name)s`, as the prepared statement `name`
    (PostgreSQL infers the parameters' types from where they are used)."""
    order: list[str] = []

    def number(match: re.Match) -> str:
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    body = re.sub(r"%\((\w+)\)s", number, sql)
    arguments = ", ".join(f"%({key})s" for key in order)
    return Prepared(name, f"PREPARE {name} AS {body}", f"EXECUTE {name}({arguments})")


# The names each connection (psycopg2's, by weak reference) has prepared; None while a
# string that prepares is under way, or after it failed: which of them were prepared is
# then unknown, so the next use starts again with DEALLOCATE ALL.
_prepared_on: weakref.WeakKeyDictionary[Any, set[str] | None] = weakref.WeakKeyDictionary()


def run_prepared(
    parts: Sequence[Prepared | str], params: dict[str, Any], connection: sa.Connection | None = None
) -> dict[str, Any] | None:
    """Run `parts` in one round trip on `connection` (default: the session's), in order: a
    string as it is, a Prepared statement executed, prepared first in the same string when
    this connection has not prepared it yet; returns the last part's first row by column
    name (None when it has none). Prepared statements outlive a transaction's rollback
    (they are the database session's), so only a failed string leaves them unknown."""
    connection = connection or db.session.connection()
    raw = connection.connection.dbapi_connection
    known = _prepared_on.get(raw, set())
    sql = []
    if known is None:
        sql.append("DEALLOCATE ALL")
        known = set()
    names = set()
    for part in parts:
        if isinstance(part, str):
            sql.append(part)
            continue
        if part.name not in known:
            sql.append(part.prepare)
        sql.append(part.execute)
        names.add(part.name)
    if not names <= known:  # something is prepared now: unknown until it is done
        _prepared_on[raw] = None
    row = _execute(connection, ";\n".join(sql), params)
    _prepared_on[raw] = known | names
    return row


def _execute(connection: sa.Connection, sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """`sql` on a cursor of the connection's own, its first row by column name. Not through
    exec_driver_sql, whose execution context and result set-up cost 35-50 us of CPU more
    per string (a third more than the driver's execute; a booking runs two), unless
    something listens for the engine's or the dialect's statements, or echoes them; an
    error is SQLAlchemy's all the same (a lost connection invalidated, the error wrapped as
    IntegrityError, OperationalError...)."""
    watched = connection._has_events or connection.engine._has_events or connection._echo
    if watched or connection.dialect._has_events:
        result = connection.exec_driver_sql(sql, params)
        row = result.fetchone() if result.returns_rows else None
        return None if row is None else dict(zip(result.keys(), row, strict=True))
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, params)
        if cursor.description is None:
            return None
        row = cursor.fetchone()
        names = [column[0] for column in cursor.description]
        return None if row is None else dict(zip(names, row, strict=True))
    except BaseException as error:  # noqa: BLE001 - as exec_driver_sql: eventlet's Timeout too
        connection._handle_dbapi_exception(error, sql, params, cursor, None)
    finally:
        with suppress(psycopg2.Error):  # a connection lost with the statement
            cursor.close()


def _packed(table: sa.Table, alias: str) -> str:
    """A row of `table` as one JSON array of its columns, in their order: two such columns
    cost the driver and SQLAlchemy's result set-up a fraction of 40 plain ones."""
    columns = [f'{alias}."{c.name}"' for c in table.columns]
    assert len(columns) <= 100, "json_build_array takes at most 100 arguments"
    return f"json_build_array({', '.join(columns)})"


# What a hold reads instead of what only a booking needs (its idempotency key, the outbox's
# facts, an id from the booking sequence: a hold must not use one up).
_READ_HOLD = "NULL, NULL, false, 0"
# The lock: the UPDATE that takes the expert's row lock and bumps their schedule version.
LOCK = prepared(
    "expertbook_lock",
    """UPDATE "user" SET schedule_version = "user".schedule_version + 1
FROM event_type WHERE event_type.id = %(event_type_id)s AND "user".id = event_type.expert_id""",
)
_READS: dict[bool, Prepared] = {}


def _read(for_hold: bool = False) -> Prepared:
    """The locked read: a booking's, or `for_hold` a hold's (see _READ_HOLD)."""
    found = _READS.get(for_hold)
    if found is not None:
        return found
    busy = _correlated(busy_query(), expert_id="u.id")
    counted = _correlated(counted_query(), event_type_id="e.id")
    receiving = _correlated(RECEIVING, expert_id="u.id")
    booking = f"""(SELECT json_build_array(k.request_hash, k.booking_id, k.response)
 FROM idempotency_key AS k WHERE k.event_type_id = e.id AND k.key = %(idempotency_key)s),
(SELECT json_agg(json_build_array(w.id, w.events)) FROM webhook_endpoint AS w
 WHERE w.expert_id = u.id),
EXISTS ({receiving}),
nextval(pg_get_serial_sequence('booking', 'id'))"""
    # All in one JSON array, read back by position: psycopg2 decodes each json column
    # through a Python call of its own, and eight columns cost about twice the one.
    sql = f"""SELECT json_build_array({_packed(User.__table__, "u")},
{_packed(EventType.__table__, "e")},
(SELECT json_agg(json_build_array(t.id, t.buffer_before_minutes, t.buffer_after_minutes)
 ORDER BY t.id) FROM event_type AS t WHERE t.expert_id = u.id),
(SELECT json_agg(a.row) FROM (
 SELECT json_build_array(b.s, b.e, b.before, b.after) FROM ({busy}) AS b(s, e, before, after)
 WHERE b.s - make_interval(mins => b.before + e.duration_minutes + e.buffer_after_minutes)
  < %(start)s
 AND b.e + make_interval(mins => b.after + e.buffer_before_minutes) > %(start)s
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
) AS a(row)),
{_READ_HOLD if for_hold else booking}) AS locked
FROM event_type AS e JOIN "user" AS u ON u.id = e.expert_id WHERE e.id = %(event_type_id)s"""
    found = _READS[for_hold] = prepared(
        "expertbook_read_hold" if for_hold else "expertbook_read", sql
    )
    return found


def warm_up() -> None:
    """Compile the statements and build the column lists once, at start, and prepare them
    on a connection of the pool (the one a fresh process's first booking then finds),
    when the database answers within a second or two."""
    writes = _write_parts(with_key=True, with_messages=True)
    statements = [LOCK, _read(), _read(for_hold=True), *writes]
    for cls in (User, EventType):
        _attributes(cls)
    try:
        with deadline(2):
            prepare([part for part in statements if isinstance(part, Prepared)])
            db.session.commit()
    except Exception:  # noqa: BLE001 - not there yet: the first booking prepares them
        discard_transaction()


def prepare(statements: Sequence[Prepared]) -> None:
    """Prepare those of `statements` this session's connection has not prepared yet, in
    one round trip (run_prepared's bookkeeping)."""
    connection = db.session.connection()
    raw = connection.connection.dbapi_connection
    known = _prepared_on.get(raw, set())
    sql = ["DEALLOCATE ALL"] if known is None else []
    known = known or set()
    sql += [s.prepare for s in statements if s.name not in known]
    if not sql:
        return
    _prepared_on[raw] = None
    connection.exec_driver_sql(";\n".join(sql), {})  # {}: "%%" read as run_prepared's are
    _prepared_on[raw] = known | {s.name for s in statements}


def read_params(
    event_type_id: int, start: datetime, idempotency_key: str | None, holder: Holder, now: datetime
) -> dict[str, Any]:
    """The locked read's parameters (read_locked's arguments but `settings`)."""
    upper = start + timedelta(minutes=1)
    return {
        # A slot starting at `start` ends within the longest duration: the busy query's
        # range covers every event type's slot; of its rows, only those that reach the
        # booked type's slot at `start` (buffers on both sides) are read.
        **busy_params(start, upper),
        "start": start,
        **count_params(start, upper),
        "now": now,
        "event_type_id": event_type_id,
        "idempotency_key": idempotency_key,
        # NULL matches nothing: nobody's holds are theirs.
        "holder_token": holder.token_hash or None,
        "holder_session": holder.session_key or None,
    }


def read_locked(
    in_band: InBand,
    event_type_id: int,
    start: datetime,
    idempotency_key: str | None,
    holder: Holder,
    now: datetime,
    for_hold: bool = False,
) -> Locked | None:
    """Lock the expert of `event_type_id` and read what a booking of `start` by `holder` at
    `now` needs (see the module's docstring); None when there is no such event type.
    `in_band`: the transaction's (database.booking_transaction): its connection, and what
    goes first (the transaction's BEGIN and SET LOCAL statements). `for_hold`: what a hold
    needs, without what only a booking does (no idempotency key, outbox facts or booking
    id: `earlier` None, `booking_id` 0).

    The expert and the event type are objects of no session (adopt), with the event type's
    `expert`; and how to read the expert's hours on the same connection, inside the
    transaction, should the slot check need them (_hours)."""
    params = read_params(event_type_id, start, idempotency_key, holder, now)
    parts = [in_band.opening] if in_band.opening else []
    connection = in_band.connection or db.session.connection()
    row = run_prepared([*parts, LOCK, _read(for_hold)], params, connection)
    if row is None:
        return None
    values = row["locked"]  # (see _read)
    user_row, event_type_row, rooms, around, earlier, endpoints, receiving, booking_id = values
    expert = adopt(User, user_row)
    event_type = adopt(EventType, event_type_row, expert=expert)
    rooms = rooms or ()
    buffers = {type_id: (before, after) for type_id, before, after in rooms}
    busy, holds, own_holds, counted, counted_holds = _around(
        around or (), expert.id, buffers, holder
    )
    known = {
        "webhook_endpoints": [(i, events) for i, events in endpoints or ()],
        "receiving_calendar": receiving,
    }
    return Locked(
        expert=expert,
        event_type=event_type,
        load_hours=lambda expert: _hours(connection, expert),
        event_type_ids=tuple(type_id for type_id, _, _ in rooms),
        busy=busy,
        earlier=tuple(earlier) if earlier is not None else None,
        known=known,
        booking_id=booking_id,
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
    """The `around` column's rows, told apart by their length (see _read): what keeps
    the expert busy at the slot, the live holds of others around the start (widened by
    their event type's `buffers`), the holder's own holds, the starts the limits count, and
    the others' live holds they count too."""
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


# (attribute, whether the column is a timestamp) for each column of a model's table.
_COLUMNS: dict[type, list[tuple[str, bool]]] = {}


def _is_instant(column: sa.Column) -> bool:
    """Whether `column` is a timestamp, which JSON carries as ISO 8601 text (either way:
    _packed's reads, _rows_json's writes); any other type JSON carries as it is, or it is
    refused here."""
    kind = getattr(column.type, "impl", column.type)
    if not isinstance(kind, sa.Integer | sa.String | sa.Boolean | sa.JSON | sa.DateTime):
        raise TypeError(f"{column.table.name}.{column.name}: no JSON for {kind!r}")
    return isinstance(kind, sa.DateTime)


def _attributes(cls) -> list[tuple[str, bool]]:
    """(attribute, is a timestamp) for each column of `cls`'s table, in _packed's order."""
    found = _COLUMNS.get(cls)
    if found is None:
        mapper = sa.inspect(cls)
        found = []
        for column in cls.__table__.columns:
            found.append((mapper.get_property_by_column(column).key, _is_instant(column)))
        _COLUMNS[cls] = found
    return found


def adopt(cls, row: list[Any], **related: Any):
    """A detached object of `cls` with the values of `row` (a _packed column) and the
    `related` objects as its relationships, as if loaded and then let go: no query, and
    in no session (adding it to the session, and the session's commit around a booking,
    cost more CPU than the booking's own statements). A relationship not given is not
    loaded: reading it raises DetachedInstanceError, never a silent None."""
    values = {
        attribute: _instant(value) if instant and value is not None else value
        for (attribute, instant), value in zip(_attributes(cls), row, strict=True)
    }
    return detached(cls, values, **related)


def detached(cls, values: dict[str, Any], **related: Any):
    """A detached object of `cls` with these attribute `values` and `related` objects,
    as if loaded (adopt's, and the booking just written)."""
    mapper, primary_key, columns = _shape(cls)
    obj = mapper.class_manager.new_instance()
    # A new instance has no history to keep: its values as loaded ones, without an event
    # per attribute.
    obj.__dict__.update(values, **related)
    if columns <= values.keys():
        # What make_transient_to_detached does, less its work for a new instance given
        # every column (no history to commit, no column to expire; a relationship not
        # given has its loader, which raises in no session): a fifth of a booking's
        # objects' CPU.
        obj._sa_instance_state.key = mapper.identity_key_from_primary_key(
            [values[key] for key in primary_key]
        )
    else:
        make_transient_to_detached(obj)  # the columns not given expired
    return obj


_SHAPES: dict[type, tuple[Any, tuple[str, ...], frozenset[str]]] = {}


def _shape(cls) -> tuple[Any, tuple[str, ...], frozenset[str]]:
    """`cls`'s mapper, its primary key's attributes, and its columns' attributes (those
    adopt gives; not relationships)."""
    found = _SHAPES.get(cls)
    if found is None:
        mapper = sa.inspect(cls)
        primary_key = tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key)
        columns = frozenset(attribute for attribute, _ in _attributes(cls))
        found = _SHAPES[cls] = (mapper, primary_key, columns)
    return found


def _hours(connection: sa.Connection, expert: User) -> Availability:
    """The expert's hours read on `connection`, in the transaction that read `expert` (so
    at the version it read): their relationships load through a session of that
    connection's own, for adopt's objects load nothing. Closing that session ends no
    transaction: on the session's connection (a hold) it joined the session's; on a
    booking's own one, in autocommit mode with BEGIN sent in band, psycopg2's rollback
    sends nothing (as database._in_band relies on too)."""
    with Session(bind=connection) as session:
        return availability_of(session.merge(expert, load=False))


def _written(table: sa.Table) -> list[sa.Column]:
    """The columns an INSERT gives: all but a generated id (the booking's is read first)."""
    return [c for c in table.columns if c.name != "id" or table is Booking.__table__]


# The rows an INSERT writes travel as one JSON array per table (json_populate_recordset),
# not as a parameter per column: psycopg2 quotes each parameter by itself, and a booking's
# 80-odd (the booking, its key, four messages) cost more CPU than the rest of the round trip
# (in-process: 276 us of the string's 463 us; quoting the JSON texts costs 25 us, the whole
# string 228 us). A nested JSON value goes into a json column as it is, a key left out is
# NULL, and an ISO 8601 text with its offset a timestamptz.
_INSERTS: dict[str, Prepared] = {}


def _insert(table: sa.Table) -> Prepared:
    """INSERT of the rows given as `%(<table>_rows)s` (_rows_json) into `table`."""
    found = _INSERTS.get(table.name)
    if found is None:
        names = ", ".join(f'"{c.name}"' for c in _written(table))
        found = _INSERTS[table.name] = prepared(
            f"expertbook_insert_{table.name}",
            f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM '
            f'json_populate_recordset(NULL::"{table.name}", %({table.name}_rows)s)',
        )
    return found


RELEASE_HOLDS = 'DELETE FROM "slot_hold" WHERE id = ANY(%(released_holds)s)'
NOTIFY = f"NOTIFY {NOTIFY_CHANNEL}"


def _write_parts(
    with_key: bool, with_messages: bool, with_holds: bool = False, notify: bool = True
) -> list[Prepared | str]:
    parts = [_insert(Booking.__table__)]
    if with_key:
        parts.append(_insert(IdempotencyKey.__table__))
    if with_holds:
        parts.append(RELEASE_HOLDS)
    if with_messages:
        parts.append(_insert(OutboxMessage.__table__))
        if notify:
            parts.append(NOTIFY)
    return parts


# (name, whether it is a timestamp) of each table's written columns.
_NAMES: dict[str, list[tuple[str, bool]]] = {}


def _rows_json(table: sa.Table, rows: Sequence[dict[str, Any]]) -> str:
    """`rows` (each with a value for every written column of `table`, and maybe more) as
    the JSON array _insert reads: a timestamp column's value as ISO 8601 with its offset, a
    JSON column's as it is (a datetime inside one is refused, as it always was, and as it is
    on SQLite)."""
    names = _NAMES.get(table.name)
    if names is None:
        names = _NAMES[table.name] = [(c.name, _is_instant(c)) for c in _written(table)]
    encoded = []
    for row in rows:
        values = {}
        for name, instant in names:
            value = row[name]
            if value is not None:  # a key left out is NULL too, and neither written nor read
                values[name] = value.isoformat() if instant else value
        encoded.append(values)
    return json.dumps(encoded, separators=(",", ":"))


def write_booking(
    booking: dict[str, Any],
    key: dict[str, Any] | None,
    messages: list[dict[str, Any]],
    released_holds: list[str],
    in_band: InBand,
) -> None:
    """INSERT the booking (its column values, id included), its idempotency key (None: no
    key), its outbox messages, DELETE the holds of `released_holds` (ids), NOTIFY the
    workers when it is due (outbox.queue.notify_due), and COMMIT: one round trip, on the
    connection of `in_band` (booking_transaction(own_connection=True)'s). Then wake this
    process's workers (outbox.queue.committed)."""
    if in_band.connection is None or not in_band.closing:
        raise ValueError("write_booking commits: it needs a transaction of its own")
    params: dict[str, Any] = {
        "released_holds": list(released_holds),
        "booking_rows": _rows_json(Booking.__table__, [booking]),
    }
    if key is not None:
        params["idempotency_key_rows"] = _rows_json(IdempotencyKey.__table__, [key])
    if messages:
        params["outbox_message_rows"] = _rows_json(OutboxMessage.__table__, messages)
    engine = in_band.connection.engine
    notify = bool(messages) and notify_due(engine)
    parts = _write_parts(key is not None, bool(messages), bool(released_holds), notify)
    run_prepared([*parts, in_band.closing], params, in_band.connection)
    committed([message["uid"] for message in messages], engine if notify else None)
