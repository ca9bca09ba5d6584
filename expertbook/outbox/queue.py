"""Writing messages into the outbox, and the registry of who delivers each kind.

`enqueue` only adds rows to the current transaction: the caller's commit makes them (and
the change that caused them) durable together. `wake` nudges this process's worker after
the commit, so an idle worker delivers at once instead of at its next poll.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..extensions import db
from .models import OutboxMessage, new_uid


class DeliveryError(Exception):
    """A delivery failed; the worker retries it later (or gives up when `permanent`).

    `message` is stored as the row's last error and shown to the expert: words, never a
    password or a whole answer body."""

    def __init__(self, message: str, *, status_code: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.message = message[:500]
        self.status_code = status_code
        self.permanent = permanent


# kind -> deliver(message) ; called by the worker outside any transaction, with an app
# context. Returns the receiver's status code (or None); raises DeliveryError to retry.
Handler = Callable[[OutboxMessage], "int | None"]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that delivers messages of `kind`."""

    def register(function: Handler) -> Handler:
        HANDLERS[kind] = function
        return function

    return register


def message_row(
    kind: str,
    *,
    now: datetime,
    due_at: datetime | None = None,
    event: str = "",
    booking_id: int | None = None,
    expert_id: int | None = None,
    endpoint_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of one new message (due at once unless `due_at`), for `enqueue`."""
    return dict(
        uid=new_uid(),
        kind=kind,
        event=event,
        booking_id=booking_id,
        expert_id=expert_id,
        endpoint_id=endpoint_id,
        payload=payload or {},
        status=OutboxMessage.PENDING,
        due_at=due_at or now,
        claimed_until=None,
        attempts=0,
        last_error="",
        status_code=None,
        created_at=now,
        delivered_at=None,
    )


def enqueue(rows: list[dict[str, Any]]) -> None:
    """Add `rows` (from message_row) to the current transaction, in one INSERT."""
    if rows:
        db.session.execute(sa.insert(OutboxMessage.__table__), rows)
