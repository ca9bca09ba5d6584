"""Outbox: partial indexes of pending rows for the workers' claim

The claim reads due pending rows oldest first and asks of each whether an older row of its
booking and kind is still pending. With only (status, due_at), a backlog of 16,000 pending
mails made one claim take 42 s on PostgreSQL (past the statement timeout, so nothing was
delivered until the burst ended): the planner, its statistics taken when the table was
small, scanned every pending row's index entry once per candidate. These two indexes hold
pending rows only (a small part of the table once mail has gone out), in the order the
claim reads them and keyed as its per-row question asks.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade():
    op.create_index(
        "ix_outbox_message_pending_due",
        "outbox_message",
        ["due_at", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_outbox_message_pending_booking",
        "outbox_message",
        ["booking_id", "kind", "created_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade():
    op.drop_index("ix_outbox_message_pending_booking", table_name="outbox_message")
    op.drop_index("ix_outbox_message_pending_due", table_name="outbox_message")
