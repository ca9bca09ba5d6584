"""Backpressure from delivery to bookings, within one process.

The delivery loop (worker.py) runs in the web process beside the requests, one green thread
among them. Under a burst that fills the cores the requests take the CPU and delivery falls
behind: on two cores, 445 bookings a second in a closed loop wrote 890 mails a second, the
two processes delivered about 600, and mails reached the mail server 3-4 s after their
commit. So while this process's worker is behind for want of CPU, a new booking first
waits a moment (before its transaction, holding nothing): the process then takes bookings
about as fast as it delivers what they say, and a mail goes out within a second or two of
its commit however hard the burst.

It never holds a booking back for a receiver that is away or slow: it engages only while
the worker's deliveries succeed and the process is busy computing (not waiting for a mail
server), and it lets go a moment after the worker stops telling it so (a worker stopped,
or stuck on a receiver that does not answer).

The worker reports (`claimed`, `delivered`); book_slot asks (`wait`). Process-local state,
read and written by green threads of one hub (or, without eventlet, threads: a stale read
costs one booking a wrong pause of at most MAX_WAIT).
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
# The process is "busy computing" when it used at least this share of a core between two
# claims at least WINDOW apart.
BUSY_SHARE = 0.4
WINDOW = 0.5


@dataclass
class _State:
    behind: float = 0.0  # seconds the oldest row of the last claim had been due
    claimed_at: float = float("-inf")  # time.monotonic() of the last claim
    delivered_at: float = float("-inf")  # time.monotonic() of the last delivery that went out
    busy: bool = False
    window_start: tuple[float, float] = (float("-inf"), 0.0)  # (monotonic, process_time)


_state = _State()


def reset() -> None:
    """Forget every report (tests)."""
    global _state
    _state = _State()


def claimed(
    now: datetime, due: Sequence[datetime], *, clock=time.monotonic, cpu=time.process_time
) -> None:
    """The worker claimed rows due at `due` (none: it is not behind) at `now`."""
    state = _state
    state.behind = max((now - min(due)).total_seconds(), 0.0) if due else 0.0
    state.claimed_at = moment = clock()
    started, cpu_then = state.window_start
    if moment - started >= WINDOW:
        used = cpu()
        if started > float("-inf"):
            state.busy = (used - cpu_then) / (moment - started) >= BUSY_SHARE
        state.window_start = (moment, used)


def delivered(*, clock=time.monotonic) -> None:
    """A delivery of the worker's went out (a receiver answered it)."""
    _state.delivered_at = clock()


def pause(threshold: float, *, clock=time.monotonic) -> float:
    """Seconds a new booking should wait first: 0 unless the worker is behind by more than
    `threshold` seconds (0 turns this off) while it delivers and the process is busy."""
    state = _state
    if threshold <= 0 or not state.busy or state.behind <= threshold:
        return 0.0
    moment = clock()
    if moment - state.claimed_at > FRESH or moment - state.delivered_at > FRESH:
        return 0.0
    return min(MAX_WAIT, (state.behind - threshold) * WAIT_PER_SECOND_BEHIND)


def wait(threshold: float) -> float:
    """Wait as `pause` says (a green sleep under eventlet); returns the seconds waited."""
    seconds = pause(threshold)
    if seconds:
        time.sleep(seconds)
    return seconds
