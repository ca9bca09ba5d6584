"""The PostgreSQL connection pool keeps what a busy process needs open, instead of opening
and closing a server connection for every request past SQLAlchemy's default of five."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from expertbook import database
from expertbook.extensions import db


def backend_pids(connections) -> set[int]:
    return {c.exec_driver_sql("SELECT pg_backend_pid()").scalar() for c in connections}


def test_a_burst_of_twelve_requests_leaves_twelve_connections_open(pg_app):
    with pg_app.app_context():
        engine = db.engine
        engine.dispose()
        assert engine.pool.size() == database.POOL_SIZE > 12
        first = [engine.connect() for _ in range(12)]
        pids = backend_pids(first)
        for connection in first:
            connection.close()
        again = [engine.connect() for _ in range(12)]
        try:
            # The same twelve server processes: none was closed and opened anew.
            assert backend_pids(again) == pids
        finally:
            for connection in again:
                connection.close()
            engine.dispose()


def test_the_engine_options_may_set_the_pool_themselves(pg_migrated_url):
    from config import TestingConfig
    from expertbook import create_app

    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=pg_migrated_url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True, "pool_size": 3, "max_overflow": 1},
    )
    with app.app_context():
        assert db.engine.pool.size() == 3
        assert db.engine.pool._max_overflow == 1
        assert db.session.scalar(sa.text("SELECT 1")) == 1
        db.session.remove()
        db.engine.dispose()


def last_statement(watcher, pid: int) -> str:
    with watcher.connect() as watching:
        return watching.execute(
            sa.text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar()


@pytest.fixture
def watcher(pg_app):
    engine = sa.create_engine(db.engine.url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    yield engine
    engine.dispose()


def test_a_checkout_costs_the_ping_alone(pg_app, watcher, monkeypatch):
    """The pool's pre-ping is SELECT 1 and nothing more. (With SQLAlchemy's isolation_level
    set, psycopg2 also sent `SET default_transaction_isolation TO DEFAULT` when the ping
    switched autocommit back off: a round trip more for every request.)"""
    monkeypatch.setattr(database, "TRUST_RECENT", 0.0)  # every checkout pings
    engine = db.engine
    engine.dispose()
    try:
        with engine.connect() as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with engine.connect():  # the same one, pinged
            assert last_statement(watcher, pid) == "SELECT 1"
        with engine.connect() as connection:
            level = connection.exec_driver_sql("SHOW transaction_isolation").scalar()
            plans = connection.exec_driver_sql("SHOW plan_cache_mode").scalar()
        assert level == "read committed"
        # Set with it, for the booking's prepared statements (booking_statements.py).
        assert plans == "force_generic_plan"
    finally:
        engine.dispose()


def test_a_connection_back_a_moment_ago_is_not_pinged(pg_app, watcher):
    """A busy process takes a connection again within milliseconds: no round trip for the
    ping then; after TRUST_RECENT seconds, the ping again."""
    engine = db.engine
    engine.dispose()
    try:
        with engine.connect() as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with engine.connect():  # nothing sent since the checkin's ROLLBACK
            assert last_statement(watcher, pid) == "ROLLBACK"
        database._checked_in[next(iter(database._checked_in))] -= database.TRUST_RECENT + 1
        with engine.connect():
            assert last_statement(watcher, pid) == "SELECT 1"
    finally:
        engine.dispose()


def test_a_connection_the_server_ended_is_replaced_at_checkout(pg_app, watcher):
    """A restart or a terminated backend: the server said so and closed the connection;
    the checkout reads that without waiting, and the pool hands out a new connection."""
    engine = db.engine
    engine.dispose()
    try:
        with engine.connect() as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with watcher.connect() as watching:
            watching.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        time.sleep(0.2)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
    finally:
        engine.dispose()


def test_a_configured_isolation_level_keeps_its_mode_and_gets_generic_plans(pg_app):
    """SQLALCHEMY_ENGINE_OPTIONS' isolation_level (AUTOCOMMIT here) is left as it was set;
    the generic plans are set all the same."""
    import psycopg2

    url = sa.make_url(str(db.engine.url)).set(drivername="postgresql")
    raw = psycopg2.connect(url.render_as_string(hide_password=False))
    try:
        raw.autocommit = True
        database._session_settings(raw, read_committed=False)
        assert raw.autocommit is True
        with raw.cursor() as cursor:
            cursor.execute("SHOW plan_cache_mode")
            assert cursor.fetchone()[0] == "force_generic_plan"
    finally:
        raw.close()
