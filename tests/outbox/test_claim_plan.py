"""The claim stays cheap however long the backlog: PostgreSQL answers it from the partial
indexes of pending rows, even with statistics taken while the table was empty (as after a
burst of bookings, before autovacuum's next ANALYZE). With only (status, due_at), the plan
below scanned every pending row's index entry once per candidate: 42 s for 16,000 mails."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.outbox import OutboxMessage
from expertbook.outbox.claims import claim, claim_query

pytestmark = pytest.mark.postgres


def explain(query) -> str:
    compiled = query.compile(dialect=db.engine.dialect, compile_kwargs={"render_postcompile": True})
    connection = db.session.connection()
    rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).all()
    return "\n".join(row[0] for row in rows)


def test_a_claim_over_a_big_backlog_reads_the_pending_indexes(pg_app, clock, add_messages):
    db.session.execute(sa.text("ANALYZE outbox_message"))  # statistics of an empty table
    db.session.commit()
    # A backlog as a burst leaves it: mails of many bookings due now, most sent already,
    # reminders due later.
    sent = add_messages(3000, kind=OutboxMessage.MAIL, now=clock.now - timedelta(minutes=5))
    db.session.execute(
        sa.update(OutboxMessage).where(OutboxMessage.uid.in_(sent)).values(status="sent")
    )
    add_messages(3000, kind=OutboxMessage.MAIL, now=clock.now - timedelta(seconds=30))
    add_messages(
        3000, kind=OutboxMessage.REMINDER, now=clock.now, due_at=clock.now + timedelta(days=1)
    )
    db.session.commit()

    plan = explain(claim_query(clock.now, limit=32))
    assert "ix_outbox_message_pending_due" in plan, plan
    assert "ix_outbox_message_pending_booking" in plan, plan
    assert "ix_outbox_message_status_due_at" not in plan, plan

    claimed = claim(clock.now, limit=32, lease=timedelta(minutes=1))
    assert len(claimed) == 32
    assert all(m.kind == OutboxMessage.MAIL and m.status == "pending" for m in claimed)
