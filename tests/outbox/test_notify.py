"""PostgreSQL: a process's enqueuing commits NOTIFY the workers of other processes at most once
per NOTIFY_EVERY, and a worker that hears one goes on looking for a while, so the commits in
between are delivered as soon."""

from __future__ import annotations

import select
import threading
import time

import psycopg2
import pytest

from config import TestingConfig
from expertbook import create_app
from expertbook.extensions import db
from expertbook.models import utcnow
from expertbook.outbox import enqueue, message_row, queue
from expertbook.outbox.worker import NOTIFY_LINGER, Worker

from .conftest import PROBE


@pytest.fixture
def listening(pg_migrated_url):
    """A LISTEN on the workers' channel, as another process's worker has: heard() -> how
    many NOTIFYs arrived since the last call."""
    connection = psycopg2.connect(pg_migrated_url.replace("+psycopg2", ""))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {queue.NOTIFY_CHANNEL}")

    def heard(wait: float = 0.3) -> int:
        end = time.monotonic() + wait
        while True:
            select.select([connection], [], [], max(end - time.monotonic(), 0))
            connection.poll()
            if time.monotonic() >= end:
                break
        count = len(connection.notifies)
        connection.notifies.clear()
        return count

    yield heard
    connection.close()


@pytest.fixture
def other_process(pg_migrated_url):
    """An app with an engine of its own, whose commits cannot wake this process's workers
    in-process: only their NOTIFY reaches them, as from another process."""
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=pg_migrated_url)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def commit_one(app, *, roll_back: bool = False) -> str:
    """Enqueue a message in `app` and commit it (or roll it back), waking no worker of this
    process in-process (as another process could not)."""
    running, queue.running_workers = queue.running_workers, type(queue.running_workers)()
    try:
        return _commit_one(app, roll_back)
    finally:
        queue.running_workers = running


def _commit_one(app, roll_back: bool) -> str:
    with app.app_context():
        row = message_row(PROBE, now=utcnow())
        enqueue([row])
        if roll_back:
            db.session.rollback()
        else:
            db.session.commit()
        db.session.remove()
    return row["uid"]


def test_commits_within_the_interval_carry_one_notify(other_process, listening):
    commit_one(other_process)
    assert listening() == 1
    commit_one(other_process)
    commit_one(other_process)
    assert listening() == 0  # within NOTIFY_EVERY of the first: none
    time.sleep(queue.NOTIFY_EVERY)
    commit_one(other_process)
    assert listening() == 1


def test_a_rolled_back_notify_does_not_count(other_process, listening):
    commit_one(other_process, roll_back=True)
    commit_one(other_process)
    assert listening() == 1


def test_a_worker_that_heard_a_notify_delivers_the_commits_after_it_too(
    pg_app, other_process, probe, listening, monkeypatch
):
    """The second commit, once the worker is idle again, sends no NOTIFY; the worker (its
    safety poll 30 s) delivers it within the second anyway."""
    monkeypatch.setattr(queue, "NOTIFY_EVERY", 3.0)
    worker = Worker(pg_app, poll=30)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # idle, LISTENing
        first = commit_one(other_process)
        deadline = time.monotonic() + 5
        while first not in probe.delivered:
            assert time.monotonic() < deadline, "the first was not delivered"
            time.sleep(0.01)
        assert listening(0.5) == 1  # meanwhile the worker has claimed again, found nothing
        second = commit_one(other_process)
        began = time.monotonic()
        while second not in probe.delivered:
            assert time.monotonic() - began < NOTIFY_LINGER, "the second waited for the poll"
            time.sleep(0.01)
        assert time.monotonic() - began < 1.0
        assert listening(0) == 0  # it came without a NOTIFY
    finally:
        worker.stop()
        thread.join(timeout=10)
