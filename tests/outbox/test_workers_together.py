"""Worker loops for real: two of them sharing PostgreSQL, and how soon an idle one wakes."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from config import TestingConfig
from expertbook import create_app
from expertbook.extensions import db
from expertbook.models import utcnow
from expertbook.outbox import OutboxMessage
from expertbook.outbox.worker import Worker


def start_loop(app, **kwargs) -> tuple[Worker, threading.Thread]:
    worker = Worker(app, **kwargs)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread


def wait_until(predicate, timeout: float) -> float:
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - began


def sent_count() -> int:
    count = db.session.scalar(
        sa.select(sa.func.count()).where(OutboxMessage.status == OutboxMessage.SENT)
    )
    db.session.commit()
    return count


def test_two_workers_on_postgresql_deliver_each_of_200_messages_once(
    pg_app, pg_migrated_url, probe, add_messages
):
    """Two loops, each with its own app, engine and connections, claim concurrently (FOR
    UPDATE SKIP LOCKED); a slow receiver keeps both busy at once."""
    original = probe.__call__
    seen_by = {}

    def slow(message):
        time.sleep(0.005)
        seen_by[message.uid] = threading.current_thread().name
        return original(message)

    probe.__class__ = type("SlowProbe", (type(probe),), {"__call__": lambda self, m: slow(m)})
    uids = add_messages(200, now=utcnow())
    apps = [
        create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=pg_migrated_url, OUTBOX_BATCH=10,
                   OUTBOX_PARALLEL=4)
        for _ in range(2)
    ]  # fmt: skip
    loops = [start_loop(app, poll=0.2) for app in apps]
    try:
        wait_until(lambda: sent_count() == 200, timeout=60)
    finally:
        for worker, thread in loops:
            worker.stop()
            thread.join(timeout=10)
        for app in apps:
            with app.app_context():
                db.engine.dispose()
    assert sorted(probe.delivered) == sorted(uids)  # each once: no duplicate, none missing
    assert len(probe.delivered) == 200


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_an_idle_worker_wakes_within_a_second_of_a_commit(request, database, probe, add_messages):
    """In-process: the commit's after_commit hook wakes the loop (SQLite and PostgreSQL);
    the safety poll is 30 s, so only the wake-up can explain a quick delivery."""
    app = request.getfixturevalue("app" if database == "sqlite" else "pg_app")
    app.config["DELIVER_INLINE"] = False
    worker, thread = start_loop(app, poll=30)
    try:
        time.sleep(0.3)  # idle now, waiting on its 30 s poll
        add_messages(now=utcnow())
        elapsed = wait_until(lambda: len(probe.delivered) == 1, timeout=5)
        assert elapsed < 1.0
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_notify_from_another_process_wakes_the_worker(pg_app, pg_migrated_url, probe):
    """Across processes on PostgreSQL: the enqueuing transaction's NOTIFY reaches the
    worker's LISTEN (the other app here has its own engine and no way to wake it in-process)."""
    from expertbook.models import utcnow
    from expertbook.outbox import enqueue, message_row, queue

    worker, thread = start_loop(pg_app, poll=30)
    other = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=pg_migrated_url)
    try:
        time.sleep(0.5)  # the loop is idle, LISTENing
        running, queue.running_workers = queue.running_workers, type(queue.running_workers)()
        try:
            with other.app_context():
                enqueue([message_row("probe", now=utcnow())])
                db.session.commit()
                db.engine.dispose()
        finally:
            queue.running_workers = running
        elapsed = wait_until(lambda: len(probe.delivered) == 1, timeout=5)
        assert elapsed < 1.0
    finally:
        worker.stop()
        thread.join(timeout=10)


def test_a_message_due_soon_is_delivered_at_its_time_not_at_the_poll(app, probe, add_messages):
    from datetime import timedelta

    app.config["DELIVER_INLINE"] = False
    worker, thread = start_loop(app, poll=30)
    try:
        add_messages(due_at=utcnow() + timedelta(seconds=1.5), now=utcnow())
        elapsed = wait_until(lambda: len(probe.delivered) == 1, timeout=10)
        # Not before its time, and well before the 30 s poll (the upper bound leaves room
        # for a loaded machine: the point is that the wait ends at the due time).
        assert 1.0 < elapsed < 8
    finally:
        worker.stop()
        thread.join(timeout=10)


def test_the_loop_survives_a_handler_that_raises(app, probe, add_messages):
    app.config["DELIVER_INLINE"] = False
    probe.fail_with = [RuntimeError("bug")]
    app.config["OUTBOX_RETRY_FIRST_SECONDS"] = 0.2
    worker, thread = start_loop(app, poll=30)
    try:
        add_messages(now=utcnow())
        wait_until(lambda: len(probe.delivered) == 1, timeout=5)
        assert thread.is_alive()
    finally:
        worker.stop()
        thread.join(timeout=10)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_slow_delivery_holds_up_no_other(request, database, probe, add_messages):
    """The loop claims again as soon as a slot is free, not once a whole batch is done: a
    message whose receiver hangs leaves the others (written before and after it) to go out
    at once, and the loop never has more than OUTBOX_PARALLEL deliveries under way."""
    app = request.getfixturevalue("app" if database == "sqlite" else "pg_app")
    app.config.update(DELIVER_INLINE=False, OUTBOX_PARALLEL=2, OUTBOX_BATCH=32)
    release = threading.Event()
    hung: list[str] = []
    original = probe.__call__
    under_way = {"now": 0, "most": 0}
    lock = threading.Lock()

    def hang_on_the_first(message):
        with lock:
            under_way["now"] += 1
            under_way["most"] = max(under_way["most"], under_way["now"])
        try:
            if not hung:
                hung.append(message.uid)
                assert release.wait(timeout=20)
            else:
                time.sleep(0.01)
            return original(message)
        finally:
            with lock:
                under_way["now"] -= 1

    probe.__class__ = type(
        "HangingProbe", (type(probe),), {"__call__": lambda s, m: hang_on_the_first(m)}
    )
    worker, thread = start_loop(app, poll=30)
    try:
        first = add_messages(now=utcnow())
        wait_until(lambda: hung == first, timeout=5)
        later = [add_messages(now=utcnow())[0] for _ in range(12)]
        wait_until(lambda: set(later) <= set(probe.delivered), timeout=10)
        assert first[0] not in probe.delivered  # still hanging, and nobody waited for it
        release.set()
        wait_until(lambda: first[0] in probe.delivered, timeout=5)
    finally:
        release.set()
        worker.stop()
        thread.join(timeout=10)
    assert under_way["most"] <= 2
    assert sorted(probe.delivered) == sorted(first + later)
