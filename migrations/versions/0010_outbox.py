"""Outbox: mail, reminders, webhooks and calendar write-back written with the change

- outbox_message: one row per message to deliver, claimed by workers, retried until sent or
  failed.
- webhook_endpoint: an expert's webhook URLs, the events they want, their encrypted secret.
- event_type.reminder_minutes: minutes before the start each participant is reminded
  (existing event types get the default, one day).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "webhook_endpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["expert_id"],
            ["user.id"],
            name=op.f("fk_webhook_endpoint_expert_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoint")),
    )
    op.create_index(op.f("ix_webhook_endpoint_expert_id"), "webhook_endpoint", ["expert_id"])
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("endpoint_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["booking.id"],
            name=op.f("fk_outbox_message_booking_id_booking"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"],
            ["user.id"],
            name=op.f("fk_outbox_message_expert_id_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoint.id"],
            name=op.f("fk_outbox_message_endpoint_id_webhook_endpoint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
        sa.UniqueConstraint("uid", name=op.f("uq_outbox_message_uid")),
    )
    op.create_index(op.f("ix_outbox_message_booking_id"), "outbox_message", ["booking_id"])
    op.create_index(op.f("ix_outbox_message_expert_id"), "outbox_message", ["expert_id"])
    op.create_index(op.f("ix_outbox_message_endpoint_id"), "outbox_message", ["endpoint_id"])
    op.create_index("ix_outbox_message_status_due_at", "outbox_message", ["status", "due_at"])
    with op.batch_alter_table("event_type", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reminder_minutes", sa.JSON(), nullable=False, server_default="[1440]")
        )


def downgrade():
    with op.batch_alter_table("event_type", schema=None) as batch_op:
        batch_op.drop_column("reminder_minutes")
    op.drop_index("ix_outbox_message_status_due_at", table_name="outbox_message")
    op.drop_index(op.f("ix_outbox_message_endpoint_id"), table_name="outbox_message")
    op.drop_index(op.f("ix_outbox_message_expert_id"), table_name="outbox_message")
    op.drop_index(op.f("ix_outbox_message_booking_id"), table_name="outbox_message")
    op.drop_table("outbox_message")
    op.drop_index(op.f("ix_webhook_endpoint_expert_id"), table_name="webhook_endpoint")
    op.drop_table("webhook_endpoint")
