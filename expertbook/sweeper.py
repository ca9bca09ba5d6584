"""The sweeper: a green thread in each web process that ends what has run out, every
SWEEP_SECONDS, and announces it after the commit: expired holds and pending requests the
expert did not answer in time (slot_released).
Each step is guarded: an error is logged and the loop goes on (the database may be away)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Flask

from . import confirmation, holds
from .database import discard_transaction
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


def sweep_once(app: Flask, now: datetime | None = None) -> None:
    """One pass: each step in an app context of its own, an error logged, not raised."""
    for step in (sweep_holds, decline_overdue):
        with app.app_context():
            try:
                step(now or datetime.now(UTC))
            except Exception:  # noqa: BLE001 - the next pass tries again
                discard_transaction()
                log.exception("sweeper: %s failed", step.__name__)


def run(app: Flask) -> None:
    while True:
        sweep_once(app)
        socketio.sleep(SWEEP_SECONDS)


def start(app: Flask) -> None:
    """Run the sweeper in the background of this web process (a green thread)."""
    socketio.start_background_task(run, app)
