"""Backpressure from delivery to bookings (expertbook/outbox/pressure.py): the rule, the
worker's reports, and the wait at the start of a booking."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from expertbook import booking as booking_module
from expertbook.extensions import db
from expertbook.models import Booking
from expertbook.outbox import OutboxMessage, pressure
from expertbook.outbox import worker as worker_module
from tests.booking_fixtures import day_ahead
from tests.outbox.conftest import failure


class Moments:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.wall = 1000.0

    def __call__(self) -> float:
        return self.wall


BUSY = 0.02  # a woken loop running 20 ms late: short of CPU


def report(now, behind: float, *, lag: float = BUSY, clock=time.monotonic) -> None:
    """The worker's reports: a claim of first tries due `behind` seconds ago, wake-ups
    running `lag` late, a delivery gone out."""
    pressure.claimed(now, [now - timedelta(seconds=behind)], clock=clock)
    for _ in range(20):
        pressure.woke(lag, clock=clock)
    pressure.delivered(clock=clock)


def test_a_worker_behind_and_short_of_cpu_holds_bookings_back_in_proportion(clock):
    moments = Moments()
    report(clock(), 1.5, clock=moments)
    assert pressure.pause(0.5, clock=moments) == pytest.approx(
        (1.5 - 0.5) * pressure.WAIT_PER_SECOND_BEHIND
    )
    report(clock(), 60, clock=moments)
    assert pressure.pause(0.5, clock=moments) == pressure.MAX_WAIT


@pytest.mark.parametrize(
    "behind, lag, threshold",
    [
        (0.4, BUSY, 0.5),  # behind by less than the threshold
        (3.0, 0.0005, 0.5),  # woken loops run at once: waiting for a receiver, not for CPU
        (3.0, BUSY, 0),  # turned off
    ],
)
def test_no_wait_unless_behind_short_of_cpu_and_on(clock, behind, lag, threshold):
    moments = Moments()
    report(clock(), behind, lag=lag, clock=moments)
    assert pressure.pause(threshold, clock=moments) == 0


def test_it_lets_go_once_wake_ups_run_on_time_again(clock):
    moments = Moments()
    report(clock(), 3, clock=moments)
    assert pressure.pause(0.5, clock=moments) > 0
    for _ in range(10):
        pressure.woke(0.0002, clock=moments)
    assert pressure.pause(0.5, clock=moments) == 0


def test_a_lag_not_reported_for_a_while_counts_no_more(clock):
    """The loop stopped being woken (claims and deliveries go on, from the slots' ends
    and the busy poll): its last lag is no sign of the process now."""
    moments = Moments()
    report(clock(), 3, clock=moments)
    moments.wall += pressure.FRESH + 0.1
    now = clock()
    pressure.claimed(now, [now - timedelta(seconds=3)], clock=moments)
    pressure.delivered(clock=moments)
    assert pressure.pause(0.5, clock=moments) == 0


def test_the_newest_first_try_of_a_claim_is_what_counts(clock):
    """A row released untried or held back behind another is old, but no backlog; a claim
    of nothing means caught up."""
    moments = Moments()
    report(clock(), 3, clock=moments)
    now = clock()
    pressure.claimed(now, [now - timedelta(hours=2), now - timedelta(seconds=0.1)], clock=moments)
    assert pressure.pause(0.5, clock=moments) == 0
    report(clock(), 3, clock=moments)
    pressure.claimed(now, [], clock=moments)
    assert pressure.pause(0.5, clock=moments) == 0


def test_it_lets_go_when_the_worker_stops_claiming_or_delivering(clock):
    moments = Moments()
    report(clock(), 3, clock=moments)
    assert pressure.pause(0.5, clock=moments) > 0
    # Claims go on but nothing goes out (the mail server is down, or does not answer).
    moments.wall += pressure.FRESH + 0.1
    now = clock()
    pressure.claimed(now, [now - timedelta(seconds=3)], clock=moments)
    assert pressure.pause(0.5, clock=moments) == 0
    # Deliveries again, then the worker stops claiming (stopped, or every slot stuck).
    pressure.delivered(clock=moments)
    pressure.woke(BUSY, clock=moments)
    assert pressure.pause(0.5, clock=moments) > 0
    moments.wall += pressure.FRESH + 0.1
    assert pressure.pause(0.5, clock=moments) == 0


def new_worker(app, clock) -> worker_module.Worker:
    return worker_module.Worker(app, poll=5, clock=clock)


def close(worker) -> None:
    for fd in (worker._wake_read, worker._wake_write):
        worker_module.os.close(fd)


def run_loop_once(app, clock) -> None:
    """One claim of the delivery loop, its tasks run to their end."""
    worker = new_worker(app, clock)
    try:
        with app.app_context():
            worker._start_deliveries()
        for thread in list(worker._in_flight):
            thread.join(10)
    finally:
        close(worker)


def test_the_loop_reports_how_far_behind_it_claims_and_what_went_out(
    any_app, probe, clock, add_messages
):
    add_messages(3, now=clock.now - timedelta(seconds=4))
    run_loop_once(any_app, clock)
    assert len(probe.delivered) == 3
    assert pressure._state.behind == pytest.approx(4.0)
    assert time.monotonic() - pressure._state.delivered_at < pressure.FRESH


def test_a_delivery_that_fails_is_not_reported_as_gone_out(any_app, probe, clock, add_messages):
    probe.fail_with = failure()
    add_messages(2, now=clock.now - timedelta(seconds=4))
    run_loop_once(any_app, clock)
    assert pressure._state.behind == pytest.approx(4.0)
    assert pressure._state.delivered_at == pressure.NEVER


def test_the_loop_reports_how_late_it_runs_once_woken(app, monkeypatch):
    worker = new_worker(app, clock=None)
    real_select = worker_module.select.select

    def woken_then_run_late(readable, writable, errors, timeout):
        worker.wake()  # a commit, while the loop waits
        time.sleep(0.05)  # the CPU went to other threads meanwhile
        return real_select(readable, writable, errors, 0)

    try:
        # Woken before it began to wait: the time in between is no lateness.
        worker.wake()
        time.sleep(0.05)
        assert worker._wait(5) is True
        assert pressure._state.lag < 0.005 * pressure.LAG_WEIGHT
        monkeypatch.setattr(worker_module.select, "select", woken_then_run_late)
        assert worker._wait(5) is True
        assert pressure._state.lag == pytest.approx(0.05 * pressure.LAG_WEIGHT, rel=0.5)
    finally:
        close(worker)


def post_booking(client, sync, hour: int):
    body = {
        "start": day_ahead(2, hour).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "name": "Bob",
        "email": "bob@example.com",
    }
    return client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body)


def test_a_booking_waits_while_delivery_is_behind_and_not_otherwise(
    app, client, sync, clock, monkeypatch
):
    naps: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:  # a pretend wait for the booking's, real for others
        if seconds == pressure.MAX_WAIT:
            naps.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(booking_module.time, "sleep", sleep)
    assert post_booking(client, sync, 9).status_code == 201
    assert naps == []
    report(clock(), 60)
    before = booking_module.utcnow()
    response = post_booking(client, sync, 10)
    assert response.status_code == 201
    assert naps == [pressure.MAX_WAIT]
    # Its `now` moved on by the wait (here a pretend one): its mails are not overdue by it.
    booking = db.session.scalar(sa.select(Booking).filter_by(uid=response.json["uid"]))
    rows = db.session.scalars(sa.select(OutboxMessage).filter_by(booking_id=booking.id)).all()
    assert rows and all(
        row.created_at >= before + timedelta(seconds=pressure.MAX_WAIT) for row in rows
    )
    app.config["OUTBOX_BACKPRESSURE_SECONDS"] = 0
    assert post_booking(client, sync, 11).status_code == 201
    assert naps == [pressure.MAX_WAIT]
