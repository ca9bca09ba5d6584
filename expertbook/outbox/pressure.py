"""Backpressure from delivery to bookings, within one process.

The delivery loop (worker.py) runs in the web process beside the requests, one green thread
among them. Under a burst that fills the cores the requests take the CPU and delivery falls
behind: on two cores, 445 bookings a second in a closed loop wrote 890 mails a second, the
two processes delivered about 600, and mails reached the mail server 3-4 s after their
commit. So while this process's worker is behind for want of CPU, a new booking first
waits a moment (before its transaction): the process then takes bookings about as fast as
it delivers what they say, and a mail goes out within a second or two of its commit however
hard the burst.

Three reports from the worker, all needed, none older than FRESH:
- behind: its last claim took first tries written more than the threshold ago (the newest
  of them: one row retried, released or held back behind another is not a backlog);
- short of CPU: the loop, woken, ran only `BUSY_LAG` or more later on average (other green
  threads had the CPU meanwhile), so it is not waiting for a receiver;
- delivering: something it sent went out, so a mail server that is down never holds a
  booking back.

Process-local state, read and written by green threads of one hub.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

# The longest a booking waits, and what it waits for each second the worker is behind
# past the threshold (OUTBOX_BACKPRESSURE_SECONDS).
MAX_WAIT = 0.2
WAIT_PER_SECOND_BEHIND = 0.2
# How long a report counts: a worker that has not claimed, or not delivered, for this long
# (stopped, or waiting for a receiver) holds nothing back.
FRESH = 1.0
# Short of CPU: the loop's wake-ups run this late on average (a moving average, each new
# one weighing LAG_WEIGHT). An idle process runs a woken thread within a fraction of a
# millisecond; with both cores full of bookings, 10-30 ms later.
BUSY_LAG = 0.005
LAG_WEIGHT = 0.3

NEVER = float("-inf")


@dataclass
class _State:
    behind: float = 0.0  # seconds: how old the newest first try of the last claim was
    claimed_at: float = NEVER  # time.monotonic() of the last claim
    delivered_at: float = NEVER  # time.monotonic() of the last delivery that went out
    lag: float = 0.0  # seconds: moving average of how late a woken loop ran
    woke_at: float = NEVER  # time.monotonic() of the last wake-up reported


_state = _State()


def reset() -> None:
    """Forget every report (a worker that stops; tests)."""
    global _state
    _state = _State()


def claimed(now: datetime, first_tries: Sequence[datetime], *, clock=time.monotonic) -> None:
    """The worker claimed, at `now`, rows that had never been tried, due at `first_tries`
    (empty: it is not behind)."""
    newest = max(first_tries, default=now)
    _state.behind = max((now - newest).total_seconds(), 0.0)
    _state.claimed_at = clock()


def woke(lag: float, *, clock=time.monotonic) -> None:
    """The worker's loop ran `lag` seconds after it was woken."""
    _state.lag += (lag - _state.lag) * LAG_WEIGHT
    _state.woke_at = clock()


def delivered(*, clock=time.monotonic) -> None:
    """A delivery of the worker's went out (a receiver took it)."""
    _state.delivered_at = clock()


def pause(threshold: float, *, clock=time.monotonic) -> float:
    """Seconds a new booking should wait first: 0 unless the worker is behind by more than
    `threshold` seconds (0 turns this off), short of CPU, and delivering."""
    state = _state
    if threshold <= 0 or state.behind <= threshold or state.lag < BUSY_LAG:
        return 0.0
    moment = clock()
    if max(moment - state.claimed_at, moment - state.delivered_at, moment - state.woke_at) > FRESH:
        return 0.0
    return min(MAX_WAIT, (state.behind - threshold) * WAIT_PER_SECOND_BEHIND)
