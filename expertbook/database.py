"""Engine settings per database, and the serialized transaction that booking writes run in.

PostgreSQL serializes bookings of one expert with a row lock on the expert (FOR NO KEY
UPDATE, taken by a SELECT or by the UPDATE that bumps its schedule version) and, as a second
line of defence, an exclusion constraint. SQLite ignores row locks, so there a booking
transaction starts with `BEGIN IMMEDIATE` (the database-wide write lock). SQLite's wait for
that lock is a busy-loop in C that would freeze the eventlet hub, so writers in one process
also queue on a lock in Python first, which eventlet's monkey-patching turns into a green
lock.

A database that cannot be reached (stopped, restarting, frozen) must cost a request a few
seconds at most, then 503 (`is_unavailable`). Every PostgreSQL connection gets a connect
timeout, TCP keepalives and a statement timeout; and since a frozen server (SIGSTOP, a hung
host) still has its kernel acknowledge every packet, so that neither keepalives nor
tcp_user_timeout ever fire and libpq's connect_timeout is ignored by psycopg2's green
(asynchronous) connections, each wait on the socket under eventlet is bounded too
(`_green_wait`).
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass

import psycopg2
from flask import Flask, current_app
from psycopg2 import extensions as pg_extensions
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import OperationalError

from .extensions import db
from .sockets import has_input

_sqlite_writer = threading.Lock()
# PostgreSQL: lock_timeout (55P03) or statement_timeout (57014) ran out.
BUSY_SQLSTATES = {"55P03", "57014"}
# PostgreSQL going away or not there yet: admin_shutdown, crash_shutdown, cannot_connect_now
# (starting up, shutting down); class 08 is every connection exception.
UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03"}
# A pooled connection is pinged before use; a healthy server answers at once.
PING_TIMEOUT = 1.0
# Seconds after its checkin a connection is used again without the ping (_fresh).
TRUST_RECENT = 1.0
_checked_in: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# How long past its statement timeout a silent server is waited for: by then it would have
# answered with the timeout error itself, so the silence means it is gone.
STATEMENT_GRACE = 1.0


class BookingBusy(Exception):
    """The booking queue did not clear in time (a lock holder is slow or stuck); retry."""


def is_busy(error: OperationalError) -> bool:
    """A lock wait ran out: PostgreSQL's lock or statement timeout, or SQLite's lock."""
    if getattr(error.orig, "pgcode", None) in BUSY_SQLSTATES:
        return True
    return isinstance(error.orig, sqlite3.OperationalError) and "locked" in str(error.orig)


def is_unavailable(error: BaseException) -> bool:
    """The database cannot be reached right now (refused, shutting down, starting up, gone
    silent, the connection lost): nothing was written, and a retry later may succeed."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    orig = error.orig
    code = getattr(orig, "pgcode", None)
    if code:
        return code in UNAVAILABLE_SQLSTATES or code.startswith("08")
    if isinstance(orig, psycopg2.InterfaceError | psycopg2.OperationalError):
        # No SQLSTATE: libpq's own failure (refused, timed out, closed), not the server's.
        return True
    return isinstance(orig, sqlite3.OperationalError) and "unable to open" in str(orig)


def discard_transaction() -> None:
    """Roll the session back after a failure. When the connection went with the database
    there is nothing to roll back: the pool has already dropped it."""
    with suppress(sa_exc.SQLAlchemyError):
        db.session.rollback()


def end_session(_error: BaseException | None = None) -> None:
    """Close the session as each app context ends. A connection the database dropped after
    the answer was made (a restart between the view's last statement and now) cannot be
    rolled back, nor need it be: it is invalidated, so the pool forgets it, and the answer
    stands, instead of the failed rollback escaping every error handler as a bare 500."""
    if not db.session.registry.has():
        return
    session = db.session()
    try:
        session.close()
    except sa_exc.SQLAlchemyError:
        with suppress(sa_exc.SQLAlchemyError):
            session.invalidate()


class DatabaseTimeout(psycopg2.OperationalError):
    """The server did not answer in time; psycopg2 closes the connection, so SQLAlchemy
    drops it from the pool instead of handing it out again."""


@dataclass
class _WaitLimits:
    connect: float = 3.0
    statement: float = 6.0


_limits = _WaitLimits()
# A tighter bound for the current request or task (seconds), and an absolute deadline
# (time.monotonic()) no wait may pass; both None when not set.
_bound: ContextVar[float | None] = ContextVar("database_wait_bound", default=None)
_deadline: ContextVar[float | None] = ContextVar("database_deadline", default=None)


@contextmanager
def wait_bound(seconds: float) -> Iterator[None]:
    """Let each wait on the server inside the block last up to `seconds` (a statement that
    may legitimately wait longer than the usual statement timeout, on a lock say)."""
    token = _bound.set(seconds)
    try:
        yield
    finally:
        _bound.reset(token)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Give up on the server once `seconds` have passed in the block, in all its waits
    together (connecting, the pool's ping, the statement)."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


# psycopg2 says a connection still being set up is in some other state (its own
# CONN_STATUS_CONNECTING, 20, while the server has not answered the start-up).
_CONNECTED = {pg_extensions.STATUS_READY, pg_extensions.STATUS_BEGIN, pg_extensions.STATUS_PREPARED}


def _wait_for(conn) -> float:
    """How long the wait about to start may last."""
    connecting = conn.status not in _CONNECTED
    bound = _limits.connect if connecting else (_bound.get() or _limits.statement)
    end = _deadline.get()
    if end is not None:
        bound = min(bound, max(end - time.monotonic(), 0.0))
    return bound


def _green_wait(conn, timeout=None) -> None:
    """psycopg2's wait callback under eventlet: eventlet's own (the green thread sleeps
    until the socket is ready), except that no wait lasts past its bound."""
    from eventlet.hubs import trampoline

    while True:
        state = conn.poll()
        if state == pg_extensions.POLL_OK:
            return
        bound = _wait_for(conn)
        error = DatabaseTimeout(f"the database did not answer within {bound:.1f} s")
        if state == pg_extensions.POLL_READ:
            trampoline(conn.fileno(), read=True, timeout=bound, timeout_exc=error)
        elif state == pg_extensions.POLL_WRITE:
            trampoline(conn.fileno(), write=True, timeout=bound, timeout_exc=error)
        else:
            raise psycopg2.OperationalError(f"bad result from poll: {state!r}")


def _eventlet_psycopg() -> bool:
    """psycopg2 runs green in this process (wsgi.py monkey-patched it)."""
    if "eventlet" not in sys.modules:
        return False
    from eventlet.patcher import is_monkey_patched

    return is_monkey_patched("psycopg") and pg_extensions.get_wait_callback() is not None


# Connections a process keeps open to PostgreSQL, and how many more it may open for a burst
# (closed again after): with several processes, keep (processes + workers) x (POOL_SIZE +
# POOL_OVERFLOW) under the server's max_connections (100 by default). SQLALCHEMY_ENGINE_OPTIONS
# may set pool_size and max_overflow instead.
POOL_SIZE = 15
POOL_OVERFLOW = 5


def engine_options(app: Flask) -> dict:
    """SQLALCHEMY_ENGINE_OPTIONS for the app's database, before the engine is made.

    On PostgreSQL each connection gets the timeouts and keepalives that bound a wait on a
    server that is away (a setting given in DATABASE_URL's query wins), and READ COMMITTED
    (see _configure_postgres)."""
    options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "postgresql":
        # One process serves many requests at once (green threads), and its delivery loop
        # up to OUTBOX_PARALLEL deliveries beside them: connections past pool_size are
        # closed when handed back, so with SQLAlchemy's default of 5 a busy process opened
        # and closed a PostgreSQL connection (a server process forked each time) for most
        # requests.
        options.setdefault("pool_size", POOL_SIZE)
        options.setdefault("max_overflow", POOL_OVERFLOW)
        connect_args = {
            "connect_timeout": max(1, round(app.config["DATABASE_CONNECT_TIMEOUT"])),
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            # Unacknowledged data (a host that vanished) ends the connection after this.
            "tcp_user_timeout": 15000,
            "options": f"-c statement_timeout={int(app.config['DATABASE_STATEMENT_TIMEOUT_MS'])}",
        }
        connect_args.update(options.get("connect_args", {}))
        for name in url.query:
            connect_args.pop(name, None)
        options["connect_args"] = connect_args
    return options


def configure_engine(app: Flask) -> None:
    # Teardowns run last-registered first: this one before Flask-SQLAlchemy's, which then
    # finds the session closed.
    app.teardown_appcontext(end_session)
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    elif engine.dialect.driver == "psycopg2":
        _configure_postgres(app, engine)


def _configure_postgres(app: Flask, engine) -> None:
    _limits.connect = float(app.config["DATABASE_CONNECT_TIMEOUT"])
    _limits.statement = app.config["DATABASE_STATEMENT_TIMEOUT_MS"] / 1000 + STATEMENT_GRACE
    if _eventlet_psycopg():
        pg_extensions.set_wait_callback(_green_wait)
    read_committed = "isolation_level" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]

    def on_connect(dbapi_connection, _record) -> None:
        _session_settings(dbapi_connection, read_committed=read_committed)

    event.listen(engine, "connect", on_connect)
    # The pool's pre-ping gets a short bound of its own: a pooled connection to a server
    # that went silent is given up after PING_TIMEOUT, not after a statement's bound. A
    # connection back in the pool a moment ago is not pinged at all (_fresh).
    ping = engine.dialect.do_ping

    def bounded_ping(dbapi_connection) -> bool:
        if _fresh(dbapi_connection):
            return True
        with wait_bound(PING_TIMEOUT):
            return ping(dbapi_connection)

    engine.dialect.do_ping = bounded_ping

    @event.listens_for(engine, "checkin")
    def on_checkin(dbapi_connection, _record) -> None:
        if dbapi_connection is not None:
            _checked_in[dbapi_connection] = time.monotonic()


def _fresh(dbapi_connection) -> bool:
    """Whether a pooled connection is taken as alive without the pre-ping's round trip (a
    busy process checks a connection out again within milliseconds; the ping was a round
    trip of every request's few): it was checked in less than TRUST_RECENT seconds ago, and
    the server has sent nothing since. A server that shuts down, restarts or terminates the
    backend sends an error and closes the connection, which leaves the socket readable: the
    pool then pings (and replaces the connection). A server that went silent longer ago
    than TRUST_RECENT is found by the ping, as before."""
    checked_in = _checked_in.get(dbapi_connection)
    if checked_in is None or time.monotonic() - checked_in > TRUST_RECENT:
        return False
    if dbapi_connection.closed:  # closed on our side: the ping says so, and the pool acts
        return False
    return not has_input(dbapi_connection.fileno())


def _session_settings(dbapi_connection, *, read_committed: bool) -> None:
    """Set as the connection connects, in one round trip:

    - `read_committed` (unless SQLALCHEMY_ENGINE_OPTIONS names an isolation_level): READ
      COMMITTED for its transactions, set, not assumed: a booking relies on each
      statement after the lock seeing every booking committed before it; under a server
      (or database, or role) default of REPEATABLE READ the lock would instead fail with a
      serialization error. Not through SQLAlchemy's isolation_level: with that, psycopg2
      sends `SET default_transaction_isolation TO DEFAULT` each time the pool's pre-ping
      switches autocommit back off, a round trip more for every request.
    - A generic plan for its prepared statements, which are the booking's own
      (booking_statements.py; psycopg2 and SQLAlchemy prepare none): a custom plan per
      execution would cost PostgreSQL the planning again, several times the execution.
      Once here, not a SET LOCAL in every booking's transaction."""
    statements = ["SET plan_cache_mode = force_generic_plan"]
    if read_committed:
        statements.insert(
            0, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"
        )
    autocommit = dbapi_connection.autocommit  # an isolation_level option may have set it
    dbapi_connection.autocommit = True
    with dbapi_connection.cursor() as cursor:
        cursor.execute("; ".join(statements))
    dbapi_connection.autocommit = autocommit


def _configure_sqlite(engine) -> None:
    # Take transaction control away from pysqlite so BEGIN is ours to say (SQLAlchemy's
    # documented recipe), which makes BEGIN IMMEDIATE possible.
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        if conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE":
            _begin_immediate(conn.connection.dbapi_connection)
        else:
            conn.exec_driver_sql("BEGIN")


def _begin_immediate(dbapi_connection, timeout: float = 5.0) -> None:
    """BEGIN IMMEDIATE, waiting for another process's write lock in Python, not in C.

    SQLite's own busy-wait (busy_timeout) sleeps inside the C library, which under eventlet
    freezes every green thread of the process. With the timeout off, a locked database
    fails at once, and we sleep between tries with `time.sleep`, which monkey-patching makes
    green.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    finally:
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


def is_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


@dataclass(frozen=True)
class InBand:
    """What a block of `booking_transaction(inline_settings=True)` sends itself on
    PostgreSQL: `opening` ahead of its first statement, in the same round trip (the SET
    LOCAL settings, and BEGIN where the transaction is still to begin), and `closing`
    after its last one ("COMMIT", or "" where the transaction had begun before); and,
    with `own_connection`, the `connection` its statements go to (else None: the
    session's)."""

    opening: str = ""
    closing: str = ""
    connection: Connection | None = None


@contextmanager
def booking_transaction(
    *, inline_settings: bool = False, own_connection: bool = False
) -> Iterator[InBand]:
    """Run the block as one serialized write transaction, committed on success.

    The caller locks the expert's row inside the block; on PostgreSQL the
    wait for that lock is bounded by `lock_timeout`, on SQLite the whole transaction is
    serialized by BEGIN IMMEDIATE behind the in-process writer lock.

    With `inline_settings`, on PostgreSQL, the block sends the transaction's settings and
    its BEGIN with its first statement and may end its last one with the COMMIT (the
    InBand it gets, see _in_band); otherwise, and on SQLite, the block gets an empty InBand.
    With `own_connection`, on PostgreSQL, the same, and the transaction runs outside the
    session, on a pooled connection of its own (_own_connection).
    """
    session = db.session
    timeout_ms = int(current_app.config["BOOKING_LOCK_TIMEOUT_MS"])
    if is_sqlite():
        # End the view's read transaction, so ours can begin IMMEDIATE. A commit, not a
        # rollback: what the view loaded stays loaded (expire_on_commit is off), so the
        # operation does not read it again.
        session.commit()
        acquired = _sqlite_writer.acquire(timeout=timeout_ms / 1000)
        if not acquired:
            raise BookingBusy("The booking queue is busy.")
        try:
            with _committed(session):
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
                yield InBand()
        finally:
            _sqlite_writer.release()
        return
    settings = (
        f"SET LOCAL lock_timeout = {timeout_ms}; SET LOCAL statement_timeout = {timeout_ms * 2}"
    )
    bound = wait_bound(timeout_ms * 2 / 1000 + STATEMENT_GRACE)
    if own_connection:
        # The view's reads (if any) end here, and their connection goes back to the pool
        # (what they loaded stays loaded): a request holds one connection at a time. A
        # request that has no session yet (an API booking) is not given one.
        if session.registry.has():
            open_session = session()
            pending = open_session.new or open_session.dirty or open_session.deleted
            if open_session.in_transaction() or pending:
                open_session.commit()
        with bound, _own_connection(settings) as in_band:
            yield in_band
        return
    # PostgreSQL: the view's read transaction (if any) simply goes on. READ COMMITTED (set
    # by engine_options) gives every statement a fresh snapshot, so what follows the lock
    # sees every booking committed before it; ending and beginning a transaction would cost
    # three round trips (COMMIT, the pool's pre-ping, BEGIN). Whatever the view wrote would
    # commit or roll back with the booking, so anything pending is committed first (the
    # views write nothing before; the API token's use commits at once).
    if session.new or session.dirty or session.deleted:
        session.commit()
    with _committed(session), bound:
        if inline_settings:
            with _in_band(session, settings) as in_band:
                yield in_band
            return
        session.execute(text(settings))  # one round trip for both
        yield InBand()


@contextmanager
def _own_connection(settings: str) -> Iterator[InBand]:
    """The booking transaction on a connection of the pool's that the ORM session never
    sees: a booking on PostgreSQL writes through booking_statements.py alone, and the
    session's bookkeeping around it (its transaction, connection and commit, adding the
    objects read) cost about 15% of a booking's CPU in-process. Statements go through the
    connection all the same, so errors are SQLAlchemy's (a lost connection invalidated,
    wrapped as OperationalError...), and a lock wait that ran out is BookingBusy.

    As in _in_band, BEGIN and COMMIT travel with the block's first and last statements;
    a block that ends without its `closing` (a replayed answer writes nothing) is
    committed after it, and one that fails is rolled back. Nothing the block does through
    the session is part of this transaction."""
    try:
        connection = db.engine.connect()
        try:
            raw = connection.connection.dbapi_connection
            raw.autocommit = True
            try:
                yield InBand(opening=f"BEGIN; {settings}", closing="COMMIT", connection=connection)
                if _open(raw):
                    connection.exec_driver_sql("COMMIT")
            except BaseException:
                if _open(raw):
                    with suppress(psycopg2.Error, sa_exc.DBAPIError):
                        _send(raw, "ROLLBACK")
                raise
            finally:
                _hand_back(connection, raw)
        finally:
            connection.close()
    except OperationalError as error:
        if is_busy(error):
            raise BookingBusy("The booking queue is busy.") from error
        raise


@contextmanager
def _in_band(session, settings: str) -> Iterator[InBand]:
    """The booking transaction's BEGIN and COMMIT sent with its first and last statements,
    not apart: psycopg2 sends BEGIN on its own before the first statement, and COMMIT on
    its own, one round trip each (a booking took five: the pool's ping, BEGIN, the locked
    read, the write, COMMIT), and the expert's row stays locked through the COMMIT's.

    The connection is in autocommit mode for the block, so psycopg2 sends neither, and
    its commit and rollback do nothing (it sees no transaction of its own): the block's
    statements run in the one opened by `opening`. After the block, what the session has
    to write is flushed into it and COMMIT sent, unless the block ended it with `closing`
    (then the session must have nothing left to write: it would be written outside the
    transaction); after an error, ROLLBACK. A transaction already open (the view read
    through the session first) goes on as before: only the settings are inline."""
    connection = session.connection()
    raw = connection.connection.dbapi_connection
    if raw.status != pg_extensions.STATUS_READY:
        yield InBand(opening=settings)
        return
    raw.autocommit = True
    try:
        yield InBand(opening=f"BEGIN; {settings}", closing="COMMIT")
        if _open(raw):
            session.flush()
            _send(raw, "COMMIT")
        elif session.new or session.deleted or any(map(session.is_modified, session.dirty)):
            raise RuntimeError("the session has writes left after the transaction's COMMIT")
    except BaseException:
        if _open(raw):
            with suppress(psycopg2.Error):
                _send(raw, "ROLLBACK")
        raise
    finally:
        _hand_back(connection, raw)


def _hand_back(connection: Connection, raw) -> None:
    """Out of autocommit mode again after an in-band transaction; a connection left
    mid-query (a wait that ran out) or inside a transaction (the ROLLBACK failed) is
    invalidated: never back to the pool."""
    with suppress(psycopg2.Error):
        if not raw.closed:
            raw.autocommit = False
    idle = pg_extensions.TRANSACTION_STATUS_IDLE
    if not raw.closed and (raw.autocommit or raw.info.transaction_status != idle):
        connection.invalidate()


def _open(raw) -> bool:
    """Whether the connection is inside a transaction (or a failed one)."""
    return not raw.closed and raw.info.transaction_status in (
        pg_extensions.TRANSACTION_STATUS_INTRANS,
        pg_extensions.TRANSACTION_STATUS_INERROR,
    )


def _send(raw, sql: str) -> None:
    with raw.cursor() as cursor:
        cursor.execute(sql)


@contextmanager
def write_transaction() -> Iterator[None]:
    """Run the block as one write transaction, committed on success, for writes that never
    wait long on another's lock (the outbox's claim, which skips locked rows, and its
    record, which touches only rows it claimed). SQLite: booking_transaction (BEGIN
    IMMEDIATE behind the process's writer lock; a deferred transaction would wait for the
    write lock inside SQLite's C busy loop). PostgreSQL: a plain transaction, without
    booking_transaction's SET LOCAL round trip: the connection's own statement_timeout
    bounds any wait."""
    if is_sqlite():
        with booking_transaction():
            yield
        return
    with _committed(db.session):
        yield


@contextmanager
def _committed(session) -> Iterator[None]:
    """Commit what the block did; on any error roll it back, a lock wait that ran out
    raised as BookingBusy."""
    try:
        yield
        session.commit()
    except OperationalError as error:
        session.rollback()
        if is_busy(error):
            raise BookingBusy("The booking queue is busy.") from error
        raise
    except BaseException:
        session.rollback()
        raise
