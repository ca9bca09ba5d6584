"""The worker's rules on both databases, with a clock the tests move: claim, lease, retry
with growing pauses, give up after the window, order within a booking."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.outbox import OutboxMessage
from expertbook.outbox.claims import claim, next_due
from expertbook.outbox.recording import JITTER, Policy, record, retry_at
from expertbook.outbox.worker import run_pass

from .conftest import PROBE, failure

POLICY = Policy(parallel=1)


def row(uid: str) -> OutboxMessage:
    db.session.expire_all()
    return db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.uid == uid))


def test_a_due_message_is_delivered_once_and_marked_sent(any_app, probe, clock, add_messages):
    (uid,) = add_messages()
    assert run_pass(any_app, clock=clock, policy=POLICY) == 1
    assert run_pass(any_app, clock=clock, policy=POLICY) == 0
    assert probe.delivered == [uid]
    sent = row(uid)
    assert (sent.status, sent.attempts, sent.status_code) == ("sent", 1, 200)
    assert sent.delivered_at == clock.now and sent.claimed_until is None


def test_a_message_waits_for_its_time(any_app, probe, clock, add_messages):
    (uid,) = add_messages(due_at=clock.now + timedelta(hours=2))
    assert run_pass(any_app, clock=clock, policy=POLICY) == 0
    assert next_due(clock.now) == clock.now + timedelta(hours=2)
    clock.advance(hours=2)
    assert run_pass(any_app, clock=clock, policy=POLICY) == 1
    assert probe.delivered == [uid]
    assert next_due(clock.now) is None


def test_a_failure_is_retried_after_growing_jittered_pauses(any_app, probe, clock, add_messages):
    (uid,) = add_messages()
    probe.fail_with = failure("connection refused", status_code=None)
    pauses = []
    for attempt in range(1, 6):
        before = clock.now
        assert run_pass(any_app, clock=clock, policy=POLICY) == 1
        message = row(uid)
        assert (message.status, message.attempts) == ("pending", attempt)
        assert message.last_error == "connection refused"
        pause = message.due_at - before
        nominal = timedelta(seconds=10 * 2 ** (attempt - 1))
        assert nominal <= pause <= nominal * (1 + JITTER)
        pauses.append(pause)
        assert run_pass(any_app, clock=clock, policy=POLICY) == 0  # not before its time
        clock.now = message.due_at
    assert pauses == sorted(pauses)
    probe.fail_with = None
    assert run_pass(any_app, clock=clock, policy=POLICY) == 1
    message = row(uid)
    assert (message.status, message.attempts, message.last_error) == ("sent", 6, "")


def test_pauses_stop_growing_at_the_longest():
    policy = Policy()
    assert policy.pause(1) == timedelta(seconds=10)
    assert policy.pause(9) == timedelta(seconds=2560)
    assert policy.pause(10) == policy.pause(500) == timedelta(hours=1)
    now = Policy().give_up_after  # any instant-like value works for the arithmetic
    spread = {retry_at(now, 3, policy, random.random) - now for _ in range(50)}
    assert len(spread) > 1  # jitter: failures at one moment do not all return together


def test_an_unexpected_exception_in_a_handler_is_a_retry(any_app, probe, clock, add_messages):
    (uid,) = add_messages()
    probe.fail_with = [ZeroDivisionError("boom")]
    assert run_pass(any_app, clock=clock, policy=POLICY) == 1
    message = row(uid)
    assert (message.status, message.attempts) == ("pending", 1)
    assert message.last_error == "Unexpected error: ZeroDivisionError."
    clock.now = message.due_at
    assert run_pass(any_app, clock=clock, policy=POLICY) == 1
    assert probe.delivered == [uid]


def test_a_permanent_error_fails_at_once(any_app, probe, clock, add_messages):
    (uid,) = add_messages()
    probe.fail_with = failure("550 no such mailbox", status_code=550, permanent=True)
    run_pass(any_app, clock=clock, policy=POLICY)
    message = row(uid)
    assert (message.status, message.attempts, message.status_code) == ("failed", 1, 550)
    clock.advance(days=2)
    assert run_pass(any_app, clock=clock, policy=POLICY) == 0


def test_retries_last_the_whole_window_then_the_message_fails(any_app, probe, clock, add_messages):
    created = clock.now
    (uid,) = add_messages()
    probe.fail_with = failure("HTTP 503")
    attempts = 0
    while row(uid).status == "pending":
        clock.now = max(clock.now, row(uid).due_at)
        assert run_pass(any_app, clock=clock, policy=POLICY) == 1
        attempts += 1
        assert attempts < 100
    message = row(uid)
    assert message.status == "failed" and message.attempts == attempts
    assert clock.now - created >= timedelta(hours=24)
    # And not much longer: the window, lengthened by the jitter, plus one longest pause.
    assert clock.now - created <= (timedelta(hours=24) + timedelta(hours=1)) * (1 + JITTER)


def test_a_message_written_days_ahead_still_gets_a_full_window(any_app, probe, clock, add_messages):
    """A reminder is written at booking time, due days later: its retry window starts when
    it first fails, not when it was written."""
    (uid,) = add_messages(due_at=clock.now + timedelta(days=5))
    clock.advance(days=5)
    first_try = clock.now
    probe.fail_with = failure("mail server down")
    while row(uid).status == "pending":
        clock.now = max(clock.now, row(uid).due_at)
        run_pass(any_app, clock=clock, policy=POLICY)
    # At least the whole window, whatever the jitter drew.
    assert clock.now - first_try >= timedelta(hours=24)


def test_a_claim_holds_a_message_for_its_lease(any_app, probe, clock, add_messages):
    (uid,) = add_messages()
    (claimed,) = claim(clock.now, limit=10, lease=timedelta(minutes=5))
    assert claimed.uid == uid
    # The claiming worker died before recording: nobody else takes it until the lease ends.
    assert run_pass(any_app, clock=clock, policy=POLICY) == 0
    assert next_due(clock.now) == clock.now + timedelta(minutes=5)
    clock.advance(minutes=5, seconds=1)
    assert run_pass(any_app, clock=clock, policy=POLICY) == 1
    assert probe.delivered == [uid]


def test_a_claim_takes_only_the_rows_asked_for_oldest_first(any_app, clock, add_messages):
    older = add_messages(2)
    clock.advance(seconds=1)
    newer = add_messages(2)
    asked = [newer[0], older[1]]
    claimed = claim(clock.now, limit=10, lease=timedelta(minutes=5), uids=asked)
    assert [m.uid for m in claimed] == [older[1], newer[0]]
    # The others are still there to claim; the claimed ones are held by their lease.
    rest = claim(clock.now, limit=10, lease=timedelta(minutes=5))
    assert [m.uid for m in rest] == [older[0], newer[1]]


def test_a_row_no_longer_pending_is_not_resurrected(any_app, probe, clock, add_messages):
    (uid,) = add_messages()
    (claimed,) = claim(clock.now, limit=10, lease=timedelta(minutes=5))
    db.session.execute(
        sa.update(OutboxMessage).where(OutboxMessage.uid == uid).values(status="cancelled")
    )
    db.session.commit()
    record(claimed, failure(), clock.now, POLICY)
    assert row(uid).status == "cancelled"


def test_messages_of_one_booking_do_not_overtake_each_other(
    any_app, probe, clock, add_messages, make_booking
):
    from tests.booking_fixtures import day_ahead

    booking, _ = make_booking(day_ahead(3, 10))
    db.session.execute(sa.delete(OutboxMessage))  # the booking's own mails
    db.session.commit()
    fields = dict(booking_id=booking.id, expert_id=booking.expert_id)
    first = add_messages(2, kind=PROBE, event="booked", **fields)  # one change, two rows
    clock.advance(seconds=1)
    second = add_messages(1, kind=PROBE, event="cancelled", **fields)
    other = add_messages(1, kind=PROBE, event="booked")  # no booking: not held back
    from expertbook.outbox import claims

    ordered = (*claims.ORDERED_KINDS, PROBE)
    original, claims.ORDERED_KINDS = claims.ORDERED_KINDS, ordered
    try:
        probe.fail_with = [failure("down"), None, None]
        run_pass(any_app, clock=clock, policy=POLICY)
        # One of the first change's rows failed: the later change waits behind it.
        assert set(probe.delivered) == {*first, *other} - {probe_failed(first, probe)}
        clock.advance(minutes=1)
        run_pass(any_app, clock=clock, policy=POLICY)
        assert set(probe.delivered) >= set(first) and second[0] not in probe.delivered
        run_pass(any_app, clock=clock, policy=POLICY)
        assert probe.delivered[-1] == second[0]
    finally:
        claims.ORDERED_KINDS = original


def probe_failed(uids: list[str], probe) -> str:
    (failed,) = [uid for uid in uids if row(uid).status == "pending"]
    return failed


@pytest.mark.parametrize("parallel", [1, 8])
def test_a_batch_is_delivered_whole(any_app, probe, clock, add_messages, parallel):
    uids = add_messages(20)
    policy = Policy(parallel=parallel, batch=32)
    assert run_pass(any_app, clock=clock, policy=policy) == 20
    assert sorted(probe.delivered) == sorted(uids)
    assert {row(uid).status for uid in uids} == {"sent"}


def test_a_wake_up_during_the_read_does_not_silence_later_ones(app, monkeypatch):
    import os
    import select

    from expertbook.outbox import worker as worker_module

    worker = worker_module.Worker(app, poll=5)
    real_read = os.read

    def read_with_a_wake_up_landing(fd, size):
        worker.wake()  # another green thread's commit, just before the pipe is read
        return real_read(fd, size)

    monkeypatch.setattr(worker_module.os, "read", read_with_a_wake_up_landing)
    try:
        worker.wake()
        worker._wait(5)
        monkeypatch.setattr(worker_module.os, "read", real_read)
        worker.wake()  # a later commit must still reach the loop
        ready, _, _ = select.select([worker._wake_read], [], [], 0)
        assert ready == [worker._wake_read]
    finally:
        os.close(worker._wake_read)
        os.close(worker._wake_write)


def test_an_idle_loop_woken_by_a_commit_lets_the_request_finish_first(
    app, probe, add_messages, monkeypatch
):
    """It claims SETTLE after the wake-up, not at once (the commit's request is still
    sending its live updates); a wait that runs out is no wake-up."""
    import threading
    import time

    from expertbook.outbox import worker as worker_module

    worker = worker_module.Worker(app, poll=30, settle=0.4)
    assert worker._wait(0.01) is False
    waiting = threading.Event()
    real_wait = worker._wait

    def wait(seconds):
        waiting.set()  # idle: the first pass found nothing (a wake-up from now on is kept)
        return real_wait(seconds)

    monkeypatch.setattr(worker, "_wait", wait)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert waiting.wait(5)
        began = time.monotonic()
        [uid] = add_messages(1, now=worker_module.utcnow())  # its commit wakes the loop
        while uid not in probe.delivered:
            assert time.monotonic() - began < 5, "not delivered"
            time.sleep(0.01)
        assert time.monotonic() - began >= 0.4
    finally:
        worker.stop()
        thread.join(timeout=10)
