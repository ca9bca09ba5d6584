"""Claiming outbox rows: which pending rows are waiting, which may go now, and the claim
itself.

A pass claims a batch: due pending rows whose claim (if any) ran out, oldest first, with
`FOR UPDATE SKIP LOCKED` on PostgreSQL (so several workers share the work without taking the
same row) and inside the serialized write transaction on SQLite (one writer at a time, as
bookings). Each claimed row gets a lease (`claimed_until`); a worker killed mid-delivery
leaves rows that any worker takes again once the lease ends.

Messages of one booking and kind (and webhook endpoint) never overtake each other: a row
waits while a pending row of the same booking, kind and endpoint written by an earlier
change exists (reminders, each due at its own time, are exempt).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from ..database import is_sqlite, write_transaction
from ..extensions import db
from ..models import UTCDateTime
from .models import OutboxMessage

# Kinds whose messages of one booking are delivered in the order they were written.
ORDERED_KINDS = (OutboxMessage.MAIL, OutboxMessage.WEBHOOK, OutboxMessage.WRITEBACK)


def waiting_behind_older(message=OutboxMessage):
    """Whether `message` (the OutboxMessage entity, or an alias of it) waits behind an
    older pending row of its booking, kind and endpoint: the one rule that keeps a
    booking's mails, webhooks and write-backs in order (reminders never wait)."""
    older = aliased(OutboxMessage)
    behind = (
        sa.select(older.id)
        .where(
            older.booking_id == message.booking_id,
            older.kind == message.kind,
            older.status == OutboxMessage.PENDING,
            # Written by an earlier change: the rows of one change (one per recipient or
            # endpoint) share their created_at and go out side by side.
            older.created_at < message.created_at,
            sa.or_(
                older.endpoint_id == message.endpoint_id,
                sa.and_(older.endpoint_id.is_(None), message.endpoint_id.is_(None)),
            ),
        )
        .exists()
    )
    return sa.and_(message.kind.in_(ORDERED_KINDS), behind)


def _waiting_conditions(now: datetime) -> list:
    """Pending rows no live claim holds, not waiting behind an older row of their booking."""
    message = OutboxMessage
    return [
        message.status == OutboxMessage.PENDING,
        sa.or_(message.claimed_until.is_(None), message.claimed_until <= now),
        sa.not_(waiting_behind_older(message)),
    ]


def claim_query(now: datetime, *, limit: int, uids: list[str] | None = None) -> sa.Select:
    """The claim's SELECT ... FOR UPDATE SKIP LOCKED (the partial indexes of pending rows,
    see models.py, keep it fast however long the backlog). The arguments may be bound
    parameters (claiming_update)."""
    query = (
        sa.select(OutboxMessage)
        .where(*_waiting_conditions(now), OutboxMessage.due_at <= now)
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OutboxMessage)
        .execution_options(populate_existing=True)
    )
    if uids is not None:
        query = query.where(OutboxMessage.uid.in_(uids))
    return query


def claiming_update(now, *, limit, until, uids=None) -> sa.Update:
    """PostgreSQL's claim in one statement: the rows claim_query picks and locks, leased
    until `until`, RETURNING them (in no particular order). The arguments may be bound
    parameters (see _bound_claiming_update)."""
    picked = claim_query(now, limit=limit, uids=uids).with_only_columns(OutboxMessage.id)
    return (
        sa.update(OutboxMessage)
        .where(OutboxMessage.id.in_(picked.scalar_subquery()))
        .values(claimed_until=until)
        .returning(OutboxMessage)
        .execution_options(populate_existing=True, synchronize_session=False)
    )


@functools.cache
def _bound_claiming_update(with_uids: bool, _ordered_kinds: tuple) -> sa.Update:
    """claiming_update built once (per value of ORDERED_KINDS, which it reads), its values
    bound at each execution (`now`, `limit`, `until`, and `uids` when `with_uids`): a busy
    worker claims once per delivery, and building the statement cost as much as running
    it."""
    return claiming_update(
        sa.bindparam("now", type_=UTCDateTime()),
        limit=sa.bindparam("limit"),
        until=sa.bindparam("until", type_=UTCDateTime()),
        uids=sa.bindparam("uids", expanding=True) if with_uids else None,
    )


def claim(
    now: datetime, *, limit: int, lease: timedelta, uids: list[str] | None = None
) -> list[OutboxMessage]:
    """Claim up to `limit` due rows (only those with `uids`, when given) until now + lease,
    and commit; return them detached, oldest first.

    PostgreSQL: one statement, an UPDATE of the rows the claim's SELECT picks and locks,
    RETURNING them (a worker claims once per delivery when busy: this is one round trip
    and the commit, instead of SET LOCAL, SELECT, UPDATE and the commit). SKIP LOCKED never
    waits for a lock, so the booking transaction's lock_timeout has nothing to bound."""
    with write_transaction():
        if is_sqlite():
            messages = list(db.session.scalars(claim_query(now, limit=limit, uids=uids)))
            if messages:
                db.session.execute(
                    sa.update(OutboxMessage)
                    .where(OutboxMessage.id.in_([m.id for m in messages]))
                    .values(claimed_until=now + lease)
                    .execution_options(synchronize_session=False)
                )
        else:
            values = {"now": now, "limit": limit, "until": now + lease}
            if uids is not None:
                values["uids"] = uids
            update = _bound_claiming_update(uids is not None, ORDERED_KINDS)
            messages = list(db.session.scalars(update, values))
            messages.sort(key=lambda m: (m.due_at, m.id))
    for message in messages:
        db.session.expunge(message)
    return messages


def next_due(now: datetime) -> datetime | None:
    """When the earliest waiting row becomes deliverable (due, and its claim run out)."""
    message = OutboxMessage
    ready_at = sa.case(
        (message.claimed_until > message.due_at, message.claimed_until), else_=message.due_at
    )
    conditions = _waiting_conditions(now)
    # Rows another worker holds become claimable when their lease ends.
    conditions[1] = sa.true()
    earliest = sa.type_coerce(sa.func.min(ready_at), UTCDateTime())
    value = db.session.scalar(sa.select(earliest).where(*conditions))
    db.session.commit()
    return value
