"""How long delivered rows are kept: sent and cancelled rows go RETENTION after their due
time, swept by the worker loop at most once an hour per process, a bounded number at a
time, each sweep in its own short transaction. Failed rows stay: the expert sees them."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..database import booking_transaction
from ..extensions import db
from .models import OutboxMessage

log = logging.getLogger("expertbook.outbox")

RETENTION = timedelta(days=30)
SWEEP_EVERY = timedelta(hours=1)
# Rows one sweep deletes at most (a first sweep of a long history goes over a few hours).
SWEEP_LIMIT = 5000

_last_sweep: dict[str, datetime] = {}  # "at" -> this process's last sweep


def sweep(now: datetime, *, limit: int = SWEEP_LIMIT) -> int:
    """Delete up to `limit` sent or cancelled rows due more than RETENTION ago; commit and
    return how many went. (A row is due when it is written or later, so a booking's mails
    outlive the bookings check-invariants looks at: those made within RETENTION.)"""
    table = OutboxMessage.__table__
    done = table.c.status.in_([OutboxMessage.SENT, OutboxMessage.CANCELLED])
    old = sa.select(table.c.id).where(done, table.c.due_at < now - RETENTION).limit(limit)
    with booking_transaction():
        deleted = db.session.execute(sa.delete(table).where(table.c.id.in_(old))).rowcount
    if deleted:
        log.info("outbox retention: %d sent or cancelled rows deleted", deleted)
    return deleted


def sweep_if_due(now: datetime) -> int:
    """sweep(now), when this process has not swept within SWEEP_EVERY; else nothing."""
    last = _last_sweep.get("at")
    if last is not None and now - last < SWEEP_EVERY:
        return 0
    _last_sweep["at"] = now
    return sweep(now)
