"""Booking listings: indexes on (expert_id, start_at, id) and (client_id, start_at, id)

My Bookings, the API's listing, the dashboard and the calendar feed page through a user's
bookings by (start_at, id) from "now"; with these indexes each page reads about as many rows
as it shows, however long the history. The composite client index replaces the one on
client_id alone (it serves the same lookups).

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("booking") as batch_op:
        batch_op.create_index("ix_booking_expert_start", ["expert_id", "start_at", "id"])
        batch_op.create_index("ix_booking_client_start", ["client_id", "start_at", "id"])
        batch_op.drop_index("ix_booking_client_id")


def downgrade():
    with op.batch_alter_table("booking") as batch_op:
        batch_op.create_index("ix_booking_client_id", ["client_id"])
        batch_op.drop_index("ix_booking_client_start")
        batch_op.drop_index("ix_booking_expert_start")
