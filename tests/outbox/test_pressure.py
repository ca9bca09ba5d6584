"""Backpressure from delivery to bookings (expertbook/outbox/pressure.py): the pure rule,
the worker's reports, and the wait at the start of a booking."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from expertbook.outbox import pressure
from expertbook.outbox import worker as worker_module
from tests.booking_fixtures import day_ahead
from tests.outbox.conftest import failure


class Moments:
    """A monotonic clock and a CPU clock the test moves by hand."""

    def __init__(self):
        self.wall = 1000.0
        self.used = 50.0

    def clock(self) -> float:
        return self.wall

    def cpu(self) -> float:
        return self.used

    def run(self, seconds: float, share: float) -> None:
        self.wall += seconds
        self.used += seconds * share


@pytest.fixture(autouse=True)
def fresh_state():
    pressure.reset()
    yield
    pressure.reset()


def behind_and_busy(clock, moments: Moments, behind: float, share: float = 0.9) -> None:
    """Two claims half a second apart with the process at `share` of a core, the second
    taking rows due `behind` seconds ago, and a delivery that went out."""
    now = clock()
    pressure.claimed(now, [now], clock=moments.clock, cpu=moments.cpu)
    moments.run(pressure.WINDOW, share)
    pressure.claimed(
        now, [now - timedelta(seconds=behind), now], clock=moments.clock, cpu=moments.cpu
    )
    pressure.delivered(clock=moments.clock)


def test_a_busy_process_whose_worker_is_behind_holds_bookings_back_in_proportion(clock):
    moments = Moments()
    behind_and_busy(clock, moments, behind=1.5)
    assert pressure.pause(0.5, clock=moments.clock) == pytest.approx(
        (1.5 - 0.5) * pressure.WAIT_PER_SECOND_BEHIND
    )
    behind_and_busy(clock, moments, behind=60)
    assert pressure.pause(0.5, clock=moments.clock) == pressure.MAX_WAIT


@pytest.mark.parametrize(
    "behind, share, threshold",
    [
        (0.4, 0.9, 0.5),  # behind by less than the threshold
        (3.0, 0.1, 0.5),  # the process mostly waits (a slow receiver), it is not short of CPU
        (3.0, 0.9, 0),  # turned off
    ],
)
def test_no_wait_unless_behind_busy_and_on(clock, behind, share, threshold):
    moments = Moments()
    behind_and_busy(clock, moments, behind=behind, share=share)
    assert pressure.pause(threshold, clock=moments.clock) == 0


def test_a_claim_of_nothing_means_caught_up(clock):
    moments = Moments()
    behind_and_busy(clock, moments, behind=3)
    pressure.claimed(clock(), [], clock=moments.clock, cpu=moments.cpu)
    assert pressure.pause(0.5, clock=moments.clock) == 0


def test_it_lets_go_when_the_worker_stops_claiming_or_delivering(clock):
    moments = Moments()
    behind_and_busy(clock, moments, behind=3)
    assert pressure.pause(0.5, clock=moments.clock) > 0
    # Claims go on but nothing goes out (the mail server is down, or does not answer).
    moments.run(pressure.FRESH + 0.1, 0.9)
    now = clock()
    pressure.claimed(now, [now - timedelta(seconds=3)], clock=moments.clock, cpu=moments.cpu)
    assert pressure.pause(0.5, clock=moments.clock) == 0
    # Deliveries again, then the worker stops claiming (stopped, or every slot stuck).
    pressure.delivered(clock=moments.clock)
    assert pressure.pause(0.5, clock=moments.clock) > 0
    moments.run(pressure.FRESH + 0.1, 0.9)
    assert pressure.pause(0.5, clock=moments.clock) == 0


def run_loop_once(app, clock) -> None:
    """One claim of the delivery loop, its tasks run to their end."""
    worker = worker_module.Worker(app, poll=5, clock=clock)
    try:
        with app.app_context():
            worker._start_deliveries()
        for thread in list(worker._in_flight):
            thread.join(10)
    finally:
        for fd in (worker._wake_read, worker._wake_write):
            worker_module.os.close(fd)


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
    assert pressure._state.delivered_at == float("-inf")


def post_booking(client, sync, hour: int):
    body = {
        "start": day_ahead(2, hour).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "name": "Bob",
        "email": "bob@example.com",
    }
    began = time.monotonic()
    response = client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body)
    return response, time.monotonic() - began


def test_a_booking_waits_while_delivery_is_behind_and_not_otherwise(
    app,
    client,
    sync,
    clock,
):
    response, quick = post_booking(client, sync, 9)
    assert response.status_code == 201
    moments = Moments()
    moments.wall = time.monotonic() - pressure.WINDOW  # reports as of now
    behind_and_busy(clock, moments, behind=60)
    response, held = post_booking(client, sync, 10)
    assert response.status_code == 201
    assert held >= pressure.MAX_WAIT
    app.config["OUTBOX_BACKPRESSURE_SECONDS"] = 0
    response, off = post_booking(client, sync, 11)
    assert response.status_code == 201
    assert off < held - pressure.MAX_WAIT / 2
