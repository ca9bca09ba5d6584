"""booking.timezone: the zone the booker picked the time in

A guest has no profile zone: their mails and their manage link showed the expert's zone,
not the one they booked in. Empty for bookings made before, and through the API (whose
times carry an offset, not a zone).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("booking", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("timezone", sa.String(length=64), server_default="", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("booking", schema=None) as batch_op:
        batch_op.drop_column("timezone")
