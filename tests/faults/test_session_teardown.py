"""A request whose database connection is dropped after its answer is made (PostgreSQL
restarting between the view's last statement and the end of the request) keeps its answer.

Found by bench/faults.py: the session's close at the end of the request rolled back on the
dead connection, the error escaped Flask's error handlers, and eventlet answered a 200 slots
read with a bare 500 (its traceback in the body).
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from config import TestingConfig, normalize_database_url
from expertbook import create_app
from expertbook.extensions import db


def terminate(url: str, pid: int) -> None:
    """End backend `pid` from another connection, and wait until it is gone."""
    engine = sa.create_engine(normalize_database_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 10
            while conn.scalar(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ):
                assert time.monotonic() < deadline, "the backend outlived its termination"
                time.sleep(0.02)
    finally:
        engine.dispose()


def test_a_connection_dropped_after_the_answer_is_made_costs_no_500(private_postgres):
    url = private_postgres.url()
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)

    @app.get("/answered-then-dropped")
    def answered_then_dropped():
        # The session's transaction is open on this connection until the request ends.
        pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
        terminate(url, pid)
        return "answered"

    response = app.test_client().get("/answered-then-dropped")
    assert (response.status_code, response.text) == (200, "answered")
    # The dead connection was not handed back to the pool: the next request works.
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT 1")) == 1
        db.session.remove()
        db.engine.dispose()
