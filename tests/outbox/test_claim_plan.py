"""The claim stays cheap however long the backlog: PostgreSQL answers it from the partial
indexes of pending rows, even with statistics taken while the table was empty (as after a
burst of bookings, before autovacuum's next ANALYZE). With only (status, due_at), the plan
below scanned every pending row's index entry once per candidate: 42 s for 16,000 mails."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.outbox import OutboxMessage, enqueue, message_row
from expertbook.outbox.claims import claim, claim_query, claiming_update
from tests.booking_fixtures import insert_booking

pytestmark = pytest.mark.postgres


def explain(query) -> str:
    compiled = query.compile(dialect=db.engine.dialect, compile_kwargs={"render_postcompile": True})
    connection = db.session.connection()
    rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).all()
    return "\n".join(row[0] for row in rows)


@pytest.fixture
def frozen_statistics(pg_app):
    """outbox_message's statistics as of an empty table, kept so while the test runs
    (autovacuum would ANALYZE it after the inserts below)."""
    db.session.execute(sa.text("ALTER TABLE outbox_message SET (autovacuum_enabled = off)"))
    db.session.execute(sa.text("ANALYZE outbox_message"))
    db.session.commit()
    yield
    db.session.rollback()
    db.session.execute(sa.text("ALTER TABLE outbox_message RESET (autovacuum_enabled)"))
    db.session.commit()


def add_backlog(bookings: list[int], now, per_booking: int, **fields) -> list[str]:
    rows = [
        message_row(booking_id=booking_id, now=now, **fields)
        for booking_id in bookings
        for _ in range(per_booking)
    ]
    enqueue(rows)
    db.session.commit()
    db.session.info.clear()
    return [row["uid"] for row in rows]


def test_a_claim_over_a_big_backlog_reads_the_pending_indexes(frozen_statistics, sync, clock):
    # A backlog as a burst leaves it: 600 bookings' mails, most of them sent already, the
    # rest due now (two of a change side by side, a later change's behind them), and their
    # reminders due later.
    day = clock.now.replace(hour=0, minute=0) + timedelta(days=2)
    booking_ids = [insert_booking(sync, day + timedelta(minutes=30 * i)).id for i in range(600)]
    mail = dict(kind=OutboxMessage.MAIL, event="booked")
    sent = add_backlog(booking_ids, clock.now - timedelta(minutes=5), 5, **mail)
    db.session.execute(
        sa.update(OutboxMessage).where(OutboxMessage.uid.in_(sent)).values(status="sent")
    )
    db.session.commit()
    add_backlog(booking_ids, clock.now - timedelta(seconds=30), 2, **mail)
    add_backlog(booking_ids, clock.now - timedelta(seconds=10), 2, **mail)
    later = clock.now + timedelta(days=1)
    add_backlog(booking_ids, clock.now, 2, kind=OutboxMessage.REMINDER, due_at=later)

    plan = explain(claim_query(clock.now, limit=32))
    assert "ix_outbox_message_pending_due" in plan, plan
    assert "ix_outbox_message_pending_booking" in plan, plan
    assert "ix_outbox_message_status_due_at" not in plan, plan
    # The claim itself, one UPDATE of what that SELECT picks: the picked rows by their key,
    # never a scan of the whole table (the sent history).
    until = clock.now + timedelta(minutes=1)
    plan = explain(claiming_update(clock.now, limit=32, until=until))
    assert "ix_outbox_message_pending_due" in plan, plan
    assert "Index Scan using pk_outbox_message" in plan, plan
    assert "Seq Scan" not in plan, plan

    claimed = claim(clock.now, limit=32, lease=timedelta(minutes=1))
    # The oldest pending mails, two of each booking's first change; its second waits.
    assert len(claimed) == 32
    assert all(m.kind == OutboxMessage.MAIL and m.status == "pending" for m in claimed)
    assert {m.created_at for m in claimed} == {clock.now - timedelta(seconds=30)}
