"""The booking's statements on PostgreSQL (booking_statements.py): two round trips, the
transaction's BEGIN and COMMIT sent with them, prepared once per connection, and still
right after a failure left it unknown which statements a connection had prepared."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import DetachedInstanceError

from expertbook import booking_statements as statements
from expertbook.availability import set_availability
from expertbook.booking import SlotUnavailable, book_slot, check_request
from expertbook.booking_checks import Holder
from expertbook.database import BookingBusy, booking_transaction
from expertbook.extensions import db
from expertbook.models import Booking, IdempotencyKey
from expertbook.outbox.events import booking_messages
from tests.calendars.test_busy import add_busy

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
DAY = (NOW + timedelta(days=3)).replace(hour=0, minute=0)


@pytest.fixture
def expert(make_user):
    user = make_user("coach", expert=True)
    set_availability(user, "UTC", {day: [(0, 24 * 60)] for day in range(7)})
    db.session.commit()
    return user


def book(event_type, hour: int, minute: int = 0, **kwargs):
    request = check_request(DAY.replace(hour=hour, minute=minute), "Ann", "ann@example.com")
    return book_slot(
        event_type.id, request, client=None, now=NOW, respond=lambda b, t: {"uid": b.uid}, **kwargs
    )


class Statements:
    """The statements each connection of the engine runs (one entry a round trip)."""

    def __init__(self):
        self.sent: list[str] = []

    def __call__(self, _conn, _cursor, statement, *_args):
        self.sent.append(statement)


@pytest.fixture
def sent(pg_app):
    listener = Statements()
    sa.event.listen(db.engine, "before_cursor_execute", listener)
    yield listener.sent
    sa.event.remove(db.engine, "before_cursor_execute", listener)


def prepared_names() -> set[str]:
    return set(db.session.scalars(sa.text("SELECT name FROM pg_prepared_statements")))


def test_a_booking_is_two_round_trips_and_prepares_once(pg_app, expert, make_event_type, sent):
    event_type = make_event_type(expert, duration_minutes=30)
    book(event_type, 8)  # the first one also loads the expert's hours, and prepares
    assert any("PREPARE expertbook_read AS" in statement for statement in sent)
    sent.clear()
    book(event_type, 9)
    assert len(sent) == 2  # BEGIN and the locked read, the write and COMMIT
    assert "PREPARE" not in sent[0] + sent[1]
    assert "EXECUTE expertbook_lock(" in sent[0] and "EXECUTE expertbook_read(" in sent[0]
    assert "EXECUTE expertbook_insert_booking(" in sent[1]
    sent.clear()
    book(event_type, 10, idempotency_key="k-10")
    # The idempotency key's INSERT is new on this connection: prepared now, in the same
    # round trip.
    assert len(sent) == 2
    assert "PREPARE expertbook_insert_idempotency_key" in sent[1]
    assert "PREPARE expertbook_insert_booking" not in sent[1]
    assert {"expertbook_lock", "expertbook_read", "expertbook_insert_booking"} <= (prepared_names())
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 3


def test_a_booking_holds_one_connection_and_reads_the_hours_on_it(pg_app, expert, make_event_type):
    """The booking's transaction runs on a pooled connection of its own, outside the
    session: a view's reads end first (their connection back to the pool), and the
    expert's hours, not yet cached, are read on the booking's connection, inside its
    transaction, not through the session on a second one (a burst of first bookings would
    hold every connection of the pool, each waiting for another)."""
    event_type = make_event_type(expert, duration_minutes=30)
    db.session.commit()
    pool = db.engine.pool
    held: list[int] = []
    statements_on: list[tuple[int, str]] = []

    def on_checkout(*_args):
        held.append(pool.checkedout())

    def on_statement(conn, _cursor, statement, *_args):
        statements_on.append((id(conn.connection.dbapi_connection), statement))

    sa.event.listen(pool, "checkout", on_checkout)
    sa.event.listen(db.engine, "before_cursor_execute", on_statement)
    try:
        db.session.execute(sa.text("SELECT 1"))  # a view's read, its transaction open
        book(event_type, 9)  # the first booking of this expert: the hours are not cached
    finally:
        sa.event.remove(pool, "checkout", on_checkout)
        sa.event.remove(db.engine, "before_cursor_execute", on_statement)
    assert held and max(held) == 1
    begin = next(i for i, (_, s) in enumerate(statements_on) if s.startswith("BEGIN"))
    end = next(i for i, (_, s) in enumerate(statements_on) if s.endswith("COMMIT"))
    booking = statements_on[begin : end + 1]  # (then the idempotency keys' sweep, its own)
    assert any("availability_rule" in s for _, s in booking[1:-1])
    assert len({c for c, _ in booking}) == 1


def test_the_hours_are_read_only_when_the_slot_check_needs_them(
    pg_app, expert, make_event_type, sent
):
    """Not cached yet, the expert's hours are read in the booking's transaction, but only
    once the start has passed the checks that need none (here: beyond the horizon)."""
    from expertbook.booking import SlotUnavailable

    event_type = make_event_type(expert, max_days_ahead=1)
    pg_app.extensions.pop("expertbook.hours", None)
    with pytest.raises(SlotUnavailable):
        book(event_type, 9)  # three days ahead
    assert sent and not any("availability_rule" in statement for statement in sent)
    event_type.max_days_ahead = 30
    db.session.commit()
    sent.clear()
    book(event_type, 9)
    assert any("availability_rule" in statement for statement in sent)


def test_the_rows_travel_as_json_and_arrive_as_they_were(pg_app, expert, make_event_type):
    """The write sends each table's rows as one JSON text (json_populate_recordset): text
    with quotes, backslashes and non-ASCII letters, a JSON column's nesting, NULLs and
    timestamps read back exactly as written, the idempotency key's stored answer too."""
    from expertbook.outbox.models import OutboxMessage

    event_type = make_event_type(expert, duration_minutes=30)
    notes = 'Line one\nO\'Brien said "hi" \\ back; 100%% %(x)s Zoë 日本'
    request = check_request(DAY.replace(hour=11), "Zoë O'Brien", "zoe@example.com", notes)
    answer = {"uid": "x", "nested": {"list": [1, "two", None, True], "quote": 'it\'s "so"'}}
    result = book_slot(
        event_type.id, request, client=None, now=NOW, respond=lambda b, t: answer,
        idempotency_key="json-rows",
    )  # fmt: skip
    db.session.expire_all()
    stored = db.session.get(Booking, result.booking.id)
    assert (stored.name, stored.notes) == ("Zoë O'Brien", notes)
    assert stored.start_at == DAY.replace(hour=11) and stored.start_at.tzinfo is not None
    assert stored.end_at == DAY.replace(hour=11, minute=30)
    assert stored.cancelled_at is None and stored.answers == {}
    assert stored.uid == result.booking.uid and stored.created_at == result.booking.created_at
    key = db.session.scalar(sa.select(IdempotencyKey).filter_by(key="json-rows"))
    assert key.response == answer and key.booking_id == stored.id
    messages = db.session.scalars(
        sa.select(OutboxMessage).filter_by(booking_id=stored.id).order_by(OutboxMessage.id)
    ).all()
    expected = booking_messages(stored, "booked", now=NOW, manage_url="x")
    assert [(m.kind, m.event) for m in messages] == [(m["kind"], m["event"]) for m in expected]
    assert all(m.status == "pending" and m.claimed_until is None for m in messages)
    assert all(m.payload and m.created_at == NOW for m in messages)
    db.session.rollback()
    # A timestamp with an offset other than UTC's arrives as the same instant.
    india = timezone(timedelta(hours=5, minutes=30))
    row = {
        "event_type_id": event_type.id, "key": "json-offset", "request_hash": "h",
        "booking_id": stored.id, "response": {}, "created_at": NOW.astimezone(india),
    }  # fmt: skip
    statements.run_prepared(
        [statements._insert(IdempotencyKey.__table__)],
        {"idempotency_key_rows": statements._rows_json(IdempotencyKey.__table__, [row])},
    )
    assert db.session.scalar(
        sa.select(IdempotencyKey.created_at).filter_by(key="json-offset")
    ) == NOW  # fmt: skip
    db.session.rollback()


def test_a_row_without_a_column_is_refused_before_anything_is_sent():
    """A row missing a written column is a bug in the caller, not a NULL; a datetime inside
    a JSON column is refused as it always was (and is on SQLite), not written as text."""
    with pytest.raises(KeyError):
        statements._rows_json(IdempotencyKey.__table__, [{"key": "k"}])
    row = {"event_type_id": 1, "key": "k", "request_hash": "h", "booking_id": 1,
           "response": {}, "created_at": NOW}  # fmt: skip
    assert '"created_at":"' + NOW.isoformat() in statements._rows_json(
        IdempotencyKey.__table__, [row]
    )
    with pytest.raises(TypeError):
        statements._rows_json(IdempotencyKey.__table__, [{**row, "response": {"at": NOW}}])


def test_begin_and_commit_travel_with_the_read_and_the_write(pg_app, expert, make_event_type, sent):
    """psycopg2 sends BEGIN and COMMIT on their own, a round trip each; a booking sends
    them with its locked read and its write (database.InBand). The server saw nothing
    after the write, and no BEGIN twice."""
    event_type = make_event_type(expert, duration_minutes=30)
    book(event_type, 8)
    pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
    db.session.commit()
    sent.clear()
    book(event_type, 9)  # the pool's last connection again: `pid`
    assert sent[0].startswith("BEGIN; SET LOCAL lock_timeout") and sent[1].endswith("COMMIT")
    watcher = sa.create_engine(db.engine.url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with watcher.connect() as watching:
            last, state = watching.execute(
                sa.text("SELECT query, state FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            ).one()
    finally:
        watcher.dispose()
    # The write was the last it was sent (not a COMMIT of its own); no transaction is open.
    assert last.startswith("EXECUTE expertbook_insert_booking(") and state == "idle"
    raw = db.session.connection().connection.dbapi_connection
    assert not any("already a transaction" in notice for notice in raw.notices)
    assert raw.autocommit is False  # as the pool hands it out
    db.session.rollback()


def test_a_booking_refused_after_the_lock_rolls_back(pg_app, expert, make_event_type):
    """Refused inside the transaction (the slot is taken): rolled back, the lock let go,
    and the connection back in its usual mode."""
    from expertbook.booking_checks import SlotUnavailable

    event_type = make_event_type(expert, duration_minutes=30)
    book(event_type, 9)
    with pytest.raises(SlotUnavailable):
        book(event_type, 9, minute=15)
    raw = db.session.connection().connection.dbapi_connection
    assert raw.autocommit is False
    db.session.rollback()
    # Nobody holds the expert's row: another connection takes it at once.
    with db.engine.connect() as other:
        other.exec_driver_sql("SET lock_timeout = 200")
        other.exec_driver_sql(f'SELECT 1 FROM "user" WHERE id = {expert.id} FOR UPDATE NOWAIT')
    assert book(event_type, 10).booking.start_at == DAY.replace(hour=10)


def test_a_failed_string_is_prepared_again_from_scratch(pg_app):
    one = statements.prepared("expertbook_test_one", "SELECT %(x)s::int + 1")
    two = statements.prepared("expertbook_test_two", "SELECT %(x)s::int + 2")
    assert statements.run_prepared([one], {"x": 1}) == {"?column?": 2}
    # `two` is prepared, then the string fails: the connection has it, unknown to us.
    with pytest.raises(DBAPIError):
        statements.run_prepared([two, "SELECT 1 / 0"], {"x": 1})
    db.session.rollback()
    assert "expertbook_test_two" in prepared_names()
    # Preparing it again as if new would fail with "already exists".
    assert statements.run_prepared([two, one], {"x": 5}) == {"?column?": 6}
    assert statements.run_prepared([two], {"x": 5}) == {"?column?": 7}
    db.session.rollback()


@contextmanager
def row_locked(user):
    """Another connection holds `user`'s row lock for the block."""
    import psycopg2

    url = sa.make_url(str(db.engine.url)).set(drivername="postgresql")
    holder = psycopg2.connect(url.render_as_string(hide_password=False))
    try:
        with holder.cursor() as cursor:
            cursor.execute('SELECT id FROM "user" WHERE id = %s FOR UPDATE', (user.id,))
        yield
    finally:
        holder.rollback()
        holder.close()


def test_a_lock_timeout_leaves_the_connection_able_to_book(pg_app, expert, make_event_type, sent):
    event_type = make_event_type(expert)
    pg_app.config["BOOKING_LOCK_TIMEOUT_MS"] = 200
    with row_locked(expert), pytest.raises(BookingBusy):
        book(event_type, 9)
    sent.clear()
    assert book(event_type, 9).booking.start_at == DAY.replace(hour=9)
    # The connection's first read prepared its statements, then timed out waiting for the
    # lock: which of them were prepared is unknown to the process, so it starts again.
    read = next(statement for statement in sent if "EXECUTE expertbook_read(" in statement)
    assert "DEALLOCATE ALL" in read and "PREPARE expertbook_read AS" in read


def test_the_booking_is_made_of_what_the_locked_read_read(pg_app, expert, make_event_type):
    event_type = make_event_type(expert, duration_minutes=30)
    db.session.commit()
    # Changed elsewhere after this session loaded it: the booking uses the new duration.
    with db.engine.begin() as other:
        other.execute(
            sa.text("UPDATE event_type SET duration_minutes = 45 WHERE id = :id"),
            {"id": event_type.id},
        )
    booking = book(event_type, 9).booking
    assert booking.end_at - booking.start_at == timedelta(minutes=45)
    # Its objects are the read's own, in no session; the session's are left as they were.
    assert booking.event_type.duration_minutes == 45 and event_type.duration_minutes == 30
    assert booking.event_type.expert is booking.expert
    assert booking.expert.id == expert.id and booking.expert.created_at.tzinfo is UTC
    assert sa.inspect(booking).detached and sa.inspect(booking.event_type).detached
    assert booking not in db.session and booking.expert not in db.session
    # What the read did not give is not loaded: an error, never a silent None.
    with pytest.raises(DetachedInstanceError):
        booking.expert.availability_rules  # noqa: B018


def test_a_detached_object_is_as_make_transient_to_detached_makes_it(pg_app, expert):
    from sqlalchemy.orm import make_transient_to_detached

    values = {column.key: None for column in sa.inspect(Booking).column_attrs}
    values.update(id=7, uid="u" * 24, name="Ann", start_at=DAY, end_at=DAY + timedelta(hours=1))
    made = statements.detached(Booking, values, expert=expert)
    reference = sa.inspect(Booking).class_manager.new_instance()  # as it was made before
    reference.__dict__.update(values, expert=expert)
    make_transient_to_detached(reference)
    for obj in (made, reference):
        state = sa.inspect(obj)
        assert state.detached and state.key == (Booking, (7,), None)
        assert not state.committed_state and not state.expired_attributes and not state.modified
        assert obj.name == "Ann" and obj.expert is expert and obj.notes is None
        with pytest.raises(DetachedInstanceError):  # not given, not loaded: never a None
            obj.event_type  # noqa: B018
    # A column not given is expired, as make_transient_to_detached expires it.
    del values["name"]
    partial = statements.detached(Booking, values)
    assert sa.inspect(partial).key == (Booking, (7,), None)
    with pytest.raises(DetachedInstanceError):
        partial.name  # noqa: B018


def test_warm_up_prepares_them_for_the_first_booking(pg_app, expert, make_event_type, sent):
    from expertbook.booking import warm_up

    event_type = make_event_type(expert)
    book(event_type, 8)  # (loads the hours; prepares on this connection)
    db.session.execute(sa.text("DEALLOCATE ALL"))
    db.session.commit()
    statements._prepared_on.clear()  # as in a fresh process
    warm_up()
    assert {"expertbook_lock", "expertbook_read", "expertbook_read_hold"} <= prepared_names()
    sent.clear()
    book(event_type, 9)
    assert len(sent) == 2 and "PREPARE" not in sent[0] + sent[1]


def test_unwatched_statements_run_on_the_cursor_with_sqlalchemys_errors(
    pg_app, expert, make_event_type, monkeypatch
):
    """Nobody listening for statements (production): run_prepared runs them on the
    driver's cursor, and its errors are SQLAlchemy's as exec_driver_sql would raise them."""
    assert not db.engine._has_events

    def not_this_way(*_args, **_kwargs):
        raise AssertionError("exec_driver_sql ran a booking's statements")

    monkeypatch.setattr(sa.Connection, "exec_driver_sql", not_this_way)
    event_type = make_event_type(expert)
    pg_app.config["BOOKING_LOCK_TIMEOUT_MS"] = 200
    with row_locked(expert), pytest.raises(BookingBusy):  # the lock timeout: OperationalError
        book(event_type, 9)
    assert book(event_type, 9).booking.start_at == DAY.replace(hour=9)
    with pytest.raises(sa.exc.IntegrityError):
        statements.run_prepared(['INSERT INTO "user" (id) VALUES (NULL)'], {})
    db.session.rollback()


def test_a_connection_lost_under_run_prepared_is_invalidated(pg_app):
    """The server ends the connection: the error is SQLAlchemy's disconnect, and the
    connection is thrown away, never handed out again."""
    one = statements.prepared("expertbook_test_lost", "SELECT %(x)s::int + 1")
    assert statements.run_prepared([one], {"x": 1}) == {"?column?": 2}
    pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
    with db.engine.connect() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(DBAPIError) as caught:
        statements.run_prepared([one], {"x": 1})
    assert caught.value.connection_invalidated
    db.session.rollback()
    assert db.session.scalar(sa.text("SELECT pg_backend_pid()")) != pid


def booking_scans(plan: dict) -> list[dict]:
    """Every node of an EXPLAIN (FORMAT JSON) plan that reads the booking table."""
    found = [plan] if plan.get("Relation Name") == "booking" else []
    for child in plan.get("Plans", []):
        found += booking_scans(child)
    return found


@pytest.mark.parametrize("limited", [False, True], ids=["plain", "with a limit per day"])
def test_the_locked_read_reads_only_the_bookings_around_the_start(
    pg_app, expert, make_event_type, limited
):
    """However long the expert's history, and whatever the planner knows of the table
    (nothing here: it was never analyzed, as with autovacuum off or not yet run), the read's
    generic plan finds the bookings around the start through an index bounded in time:
    those that keep the expert busy, and those a limit counts. It used to read every
    booking of the expert (slot_queries._overlaps), and with a limit every booking of the
    event type (migration 0017)."""
    event_type = make_event_type(expert, duration_minutes=30, max_per_day=5 if limited else None)
    # One booking a day at noon, 3,000 days around DAY: a long history and a long future.
    db.session.execute(
        sa.text(
            """INSERT INTO booking (uid, expert_id, event_type_id, name, email, notes,
            start_at, end_at, status, video_url, cancel_reason, sequence, manage_token_hash,
            created_at, updated_at)
            SELECT 'history' || n, :expert, :event_type, 'Ann', 'ann@example.com', '',
            :noon + n * interval '1 day', :noon + n * interval '1 day' + interval '30 min',
            'confirmed', '', '', 0, md5(n::text), now(), now()
            FROM generate_series(-1500, 1500) AS n"""
        ),
        {"expert": expert.id, "event_type": event_type.id, "noon": DAY.replace(hour=12)},
    )
    db.session.commit()
    start = DAY.replace(hour=9)
    params = statements.read_params(event_type.id, start, None, Holder(), NOW)
    read = statements._read()
    statements.prepare([read])  # as the booking's first round trip would
    explained = (
        db.session.connection()
        .exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + read.execute, params)
        .scalar()
    )
    ran = [scan for scan in booking_scans(explained[0]["Plan"]) if scan["Actual Loops"]]
    assert len(ran) == (2 if limited else 1), explained
    # At most the noons of the days a limit counts (COUNT_MARGIN around the start), of 3,001.
    days = (params["count_before"] - params["count_after"]).days + 1
    for scan in ran:
        read_rows = scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0)
        assert read_rows * scan["Actual Loops"] <= days, scan
    assert book(event_type, 9).booking.start_at == start  # and the booking still stands


def test_the_locked_read_gives_only_the_busy_times_that_reach_the_slot(
    pg_app, expert, make_event_type
):
    """Of what keeps the expert busy around the start (the busy query's day and a half
    either side, for the longest durations and buffers), the read gives only what reaches
    the booked slot, its buffers and theirs included: the slot check weighs nothing else,
    and each row read costs the booking its decoding."""
    booked = make_event_type(
        expert, duration_minutes=30, buffer_before_minutes=10, buffer_after_minutes=10
    )
    long_after = make_event_type(expert, duration_minutes=30, buffer_after_minutes=120)
    long_before = make_event_type(expert, duration_minutes=30, buffer_before_minutes=30)
    # The slot at 09:00 with its buffers keeps 08:50-09:40; each booking's own reach is
    # its time widened by its type's buffers.
    bookings = [
        (DAY.replace(hour=6), long_after),  # 06:00-08:30: clear
        (DAY.replace(hour=6, minute=30), long_after),  # 06:30-09:00: reaches
        (DAY.replace(hour=7), booked),  # 06:50-07:40: clear
        (DAY.replace(hour=8, minute=10), booked),  # 08:00-08:50: touches, clear
        (DAY.replace(hour=10), long_before),  # 09:30-10:30: reaches
        (DAY.replace(hour=11), booked),  # 10:50-11:40: clear
        (DAY.replace(hour=9) - timedelta(days=1), booked),  # the day before: clear
    ]
    for n, (start, event_type) in enumerate(bookings):
        db.session.execute(
            sa.text(
                """INSERT INTO booking (uid, expert_id, event_type_id, name, email, notes,
                start_at, end_at, status, video_url, cancel_reason, sequence,
                manage_token_hash, created_at, updated_at)
                VALUES (:uid, :expert, :event_type, 'Ann', 'ann@example.com', '', :start,
                :start + interval '30 min', 'confirmed', '', '', 0, :uid, now(), now())"""
            ),
            {"uid": f"around-{n}", "expert": expert.id, "event_type": event_type.id,
             "start": start},
        )  # fmt: skip
    db.session.commit()
    # A calendar's busy times block without buffers of their own.
    add_busy(expert, (DAY.replace(hour=8, minute=30), DAY.replace(hour=8, minute=50)))  # clear
    add_busy(expert, (DAY.replace(hour=9, minute=35), DAY.replace(hour=9, minute=50)))  # reaches

    def busy_at(start: datetime) -> list[tuple[datetime, datetime]]:
        with booking_transaction(own_connection=True) as in_band:
            locked = statements.read_locked(in_band, booked.id, start, None, Holder(), NOW)
        return sorted((interval.start, interval.end) for interval in locked.busy)

    at = DAY.replace  # (UTC)
    assert busy_at(at(hour=9)) == [
        (at(hour=6, minute=30), at(hour=9)),
        (at(hour=9, minute=30), at(hour=10, minute=30)),
        (at(hour=9, minute=35), at(hour=9, minute=50)),
    ]
    assert busy_at(at(hour=13)) == []
    with pytest.raises(SlotUnavailable):
        book(booked, 9)
    assert book(booked, 13).booking.start_at == at(hour=13)
