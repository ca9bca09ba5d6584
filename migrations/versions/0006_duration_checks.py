"""CHECK constraints for the limits the busy query relies on

slots.py bounds its scan of an expert's bookings: a booking that starts more than the
longest duration and buffer (720 minutes each) before a range cannot reach into it. Until
now only the application held those limits; now the schema does too. Event types: a
duration of 5 to 720 minutes, buffers of 0 to 720. Bookings: at most 720 minutes long.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BOOKING_DURATION = {
    "postgresql": "end_at - start_at <= interval '720 minutes'",
    "sqlite": "strftime('%s', end_at) - strftime('%s', start_at) <= 43200",
}


def upgrade():
    with op.batch_alter_table("event_type", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_event_type_duration_in_range"), "duration_minutes BETWEEN 5 AND 720"
        )
        batch_op.create_check_constraint(
            op.f("ck_event_type_buffers_in_range"),
            "buffer_before_minutes BETWEEN 0 AND 720 AND buffer_after_minutes BETWEEN 0 AND 720",
        )
    with op.batch_alter_table("booking", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_booking_duration_in_range"), BOOKING_DURATION[op.get_bind().dialect.name]
        )


def downgrade():
    with op.batch_alter_table("booking", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_booking_duration_in_range"), type_="check")
    with op.batch_alter_table("event_type", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_event_type_buffers_in_range"), type_="check")
        batch_op.drop_constraint(op.f("ck_event_type_duration_in_range"), type_="check")
