"""Event types can be archived: event_type.archived_at

Deleting an event type deletes its bookings (they cascade), so a type with bookings is
archived instead: it stops being offered anywhere, its bookings keep their pages and
calendar files, and the expert can restore it. An archived type is never active (CHECK).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("event_type", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_event_type_archived_inactive"), "archived_at IS NULL OR NOT active"
        )


def downgrade():
    with op.batch_alter_table("event_type", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_event_type_archived_inactive"), type_="check")
        batch_op.drop_column("archived_at")
