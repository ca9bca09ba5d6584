"""The PostgreSQL connection pool keeps what a busy process needs open, instead of opening
and closing a server connection for every request past SQLAlchemy's default of five."""

from __future__ import annotations

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


def test_a_checkout_costs_the_ping_alone(pg_app):
    """The pool's pre-ping is SELECT 1 and nothing more. (With SQLAlchemy's isolation_level
    set, psycopg2 also sent `SET default_transaction_isolation TO DEFAULT` when the ping
    switched autocommit back off: a round trip more for every request.)"""
    with pg_app.app_context():
        engine = db.engine
        engine.dispose()
        with engine.connect() as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        watcher = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        try:
            with engine.connect(), watcher.connect() as watching:  # the same one, pinged
                last = watching.execute(
                    sa.text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ).scalar()
            assert last == "SELECT 1"
            with engine.connect() as connection:
                level = connection.exec_driver_sql("SHOW transaction_isolation").scalar()
            assert level == "read committed"
        finally:
            watcher.dispose()
            engine.dispose()
