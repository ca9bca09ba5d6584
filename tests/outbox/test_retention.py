"""Sent and cancelled rows are swept RETENTION after their due time; failed and pending
ones stay."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.outbox import OutboxMessage, retention


def statuses() -> list[tuple]:
    db.session.expire_all()
    query = sa.select(OutboxMessage.status, OutboxMessage.due_at).order_by(OutboxMessage.id)
    return [(status, due) for status, due in db.session.execute(query)]


def test_done_rows_past_the_retention_are_swept(any_app, clock, add_messages, monkeypatch):
    now = clock.now
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    for status in ("sent", "cancelled", "failed", "pending"):
        (uid,) = add_messages(now=old)
        db.session.execute(
            sa.update(OutboxMessage).where(OutboxMessage.uid == uid).values(status=status)
        )
    (kept,) = add_messages(now=recent)
    db.session.execute(
        sa.update(OutboxMessage).where(OutboxMessage.uid == kept).values(status="sent")
    )
    db.session.commit()
    monkeypatch.setattr(retention, "_last_sweep", {})
    assert retention.sweep_if_due(now) == 2
    assert [s for s, _ in statuses()] == ["failed", "pending", "sent"]
    # At most once an hour per process.
    (again,) = add_messages(now=old)
    db.session.execute(
        sa.update(OutboxMessage).where(OutboxMessage.uid == again).values(status="sent")
    )
    db.session.commit()
    assert retention.sweep_if_due(now + timedelta(minutes=59)) == 0
    assert retention.sweep_if_due(now + timedelta(minutes=61)) == 1


def test_a_sweep_deletes_at_most_its_limit(any_app, clock, add_messages):
    now = clock.now
    uids = add_messages(5, now=now - timedelta(days=40))
    db.session.execute(
        sa.update(OutboxMessage).where(OutboxMessage.uid.in_(uids)).values(status="sent")
    )
    db.session.commit()
    assert retention.sweep(now, limit=3) == 3
    assert retention.sweep(now, limit=3) == 2
