"""The sweeper: a green thread in each web process that ends what has run out, every
SWEEP_SECONDS, and announces it after the commit: expired holds and pending requests the
expert did not answer in time (slot_released).
Each step is guarded: an error is logged and the loop goes on. A database that cannot be
reached is said once in a line (no traceback every 2 s of an outage), and its return too."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Flask

from . import confirmation, holds
from .database import discard_transaction, is_unavailable
from .extensions import socketio

log = logging.getLogger("expertbook.sweeper")

SWEEP_SECONDS = 2.0


def sweep_holds(now: datetime) -> int:
    """Delete the expired holds and tell the pages their times are free. Returns how many."""
    from .realtime import announce_hold_released

    swept = holds.sweep_expired(now)
    for hold in swept:
        announce_hold_released(hold)
    return len(swept)


def decline_overdue(now: datetime) -> int:
    """Decline the pending requests past their deadline (expertbook.confirmation) and tell
    the pages their times are free. Returns how many."""
    from .realtime import announce_slot_released

    declined = confirmation.decline_overdue(now)
    for booking in declined:
        announce_slot_released(booking)
    return len(declined)


class _Outage:
    """Whether the last pass found the database unreachable (this process's sweeper)."""

    down = False


def sweep_once(app: Flask, now: datetime | None = None) -> None:
    """One pass: each step in an app context of its own, an error logged, not raised."""
    unreachable = None
    for step in (sweep_holds, decline_overdue):
        with app.app_context():
            try:
                step(now or datetime.now(UTC))
            except Exception as error:  # noqa: BLE001 - the next pass tries again
                discard_transaction()
                if is_unavailable(error):
                    unreachable = error
                else:
                    log.exception("sweeper: %s failed", step.__name__)
    if unreachable is not None and not _Outage.down:
        log.warning("sweeper: database unavailable (%s); trying again", type(unreachable).__name__)
    elif unreachable is None and _Outage.down:
        log.info("sweeper: database back")
    _Outage.down = unreachable is not None


def run(app: Flask) -> None:
    while True:
        sweep_once(app)
        socketio.sleep(SWEEP_SECONDS)


def start(app: Flask) -> None:
    """Run the sweeper in the background of this web process (a green thread)."""
    socketio.start_background_task(run, app)
