"""Engine settings per database, and the serialized transaction that booking writes run in.

PostgreSQL serializes bookings of one expert with a row lock on the expert (FOR NO KEY
UPDATE, taken by a SELECT or by the UPDATE that bumps its schedule version) and, as a second
line of defence, an exclusion constraint. SQLite ignores row locks, so there a booking
transaction starts with `BEGIN IMMEDIATE` (the database-wide write lock). SQLite's wait for
that lock is a busy-loop in C that would freeze the eventlet hub, so writers in one process
also queue on a lock in Python first, which eventlet's monkey-patching turns into a green
lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app
from sqlalchemy import event, make_url, text
from sqlalchemy.exc import OperationalError

from .extensions import db

_sqlite_writer = threading.Lock()
# PostgreSQL: lock_timeout (55P03) or statement_timeout (57014) ran out.
BUSY_SQLSTATES = {"55P03", "57014"}


class BookingBusy(Exception):
    """The booking queue did not clear in time (a lock holder is slow or stuck); retry."""


def is_busy(error: OperationalError) -> bool:
    """A lock wait ran out: PostgreSQL's lock or statement timeout, or SQLite's lock."""
    if getattr(error.orig, "pgcode", None) in BUSY_SQLSTATES:
        return True
    return isinstance(error.orig, sqlite3.OperationalError) and "locked" in str(error.orig)


def engine_options(app: Flask) -> dict:
    """SQLALCHEMY_ENGINE_OPTIONS for the app's database, before the engine is made.

    On PostgreSQL, READ COMMITTED is set, not assumed: a booking relies on each statement
    after the lock seeing every booking committed before it. Under a server default of
    REPEATABLE READ, the lock would instead fail with a serialization error."""
    options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    if make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() == "postgresql":
        options.setdefault("isolation_level", "READ COMMITTED")
    return options


def configure_engine(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)


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


@contextmanager
def booking_transaction() -> Iterator[None]:
    """Run the block as one serialized write transaction, committed on success.

    The caller locks the expert's row inside the block; on PostgreSQL the
    wait for that lock is bounded by `lock_timeout`, on SQLite the whole transaction is
    serialized by BEGIN IMMEDIATE behind the in-process writer lock.
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
                yield
        finally:
            _sqlite_writer.release()
        return
    # PostgreSQL: the view's read transaction (if any) simply goes on. READ COMMITTED (set
    # by engine_options) gives every statement a fresh snapshot, so what follows the lock
    # sees every booking committed before it; ending and beginning a transaction would cost
    # three round trips (COMMIT, the pool's pre-ping, BEGIN). Whatever the view wrote would
    # commit or roll back with the booking, so anything pending is committed first (the
    # views write nothing before; the API token's use commits at once).
    if session.new or session.dirty or session.deleted:
        session.commit()
    with _committed(session):
        # One round trip for both settings.
        session.execute(
            text(
                f"SET LOCAL lock_timeout = {timeout_ms}; "
                f"SET LOCAL statement_timeout = {timeout_ms * 2}"
            )
        )
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
