"""Holds, bookings that wait for the expert, limits per day and week, booking questions

- slot_hold: a time held for a few minutes while someone books it.
- event_type: requires_confirmation, confirm_within_hours, max_per_day, max_per_week,
  questions.
- booking: confirm_by (a pending request's deadline), answers.
- PostgreSQL: the exclusion constraint covers pending bookings too (they hold the time as a
  confirmed one does). Its name stays, so tools that look for it still find it.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

CONSTRAINT = "booking_confirmed_no_overlap"
EXCLUDE = (
    f"ALTER TABLE booking ADD CONSTRAINT {CONSTRAINT} "
    "EXCLUDE USING gist (expert_id WITH =, tstzrange(start_at, end_at, '[)') WITH &&) "
)


def upgrade():
    op.create_table(
        "slot_hold",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=False),
        sa.Column("event_type_id", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_key", sa.String(length=64), server_default="", nullable=False),
        sa.Column("address", sa.String(length=64), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_slot_hold_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["event_type_id"],
            ["event_type.id"],
            name=op.f("fk_slot_hold_event_type_id_event_type"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["user.id"], name=op.f("fk_slot_hold_expert_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_hold")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_slot_hold_token_hash")),
    )
    op.create_index("ix_slot_hold_expert_start", "slot_hold", ["expert_id", "start_at"])
    op.create_index(op.f("ix_slot_hold_event_type_id"), "slot_hold", ["event_type_id"])
    op.create_index(op.f("ix_slot_hold_expires_at"), "slot_hold", ["expires_at"])

    with op.batch_alter_table("event_type", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "requires_confirmation", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch_op.add_column(sa.Column("confirm_within_hours", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_per_day", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_per_week", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("questions", sa.JSON(), server_default="[]", nullable=False))

    with op.batch_alter_table("booking", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirm_by", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("answers", sa.JSON(), server_default="{}", nullable=False))
        batch_op.create_index(batch_op.f("ix_booking_confirm_by"), ["confirm_by"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE booking DROP CONSTRAINT IF EXISTS {CONSTRAINT}")
        op.execute(EXCLUDE + "WHERE (status IN ('confirmed', 'pending'))")


def downgrade():
    # Pending and declined are not known before this revision: they become cancelled.
    op.execute("UPDATE booking SET status = 'cancelled' WHERE status IN ('pending', 'declined')")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE booking DROP CONSTRAINT IF EXISTS {CONSTRAINT}")
        op.execute(EXCLUDE + "WHERE (status = 'confirmed')")

    with op.batch_alter_table("booking", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_booking_confirm_by"))
        batch_op.drop_column("answers")
        batch_op.drop_column("confirm_by")

    with op.batch_alter_table("event_type", schema=None) as batch_op:
        batch_op.drop_column("questions")
        batch_op.drop_column("max_per_week")
        batch_op.drop_column("max_per_day")
        batch_op.drop_column("confirm_within_hours")
        batch_op.drop_column("requires_confirmation")

    op.drop_index(op.f("ix_slot_hold_expires_at"), table_name="slot_hold")
    op.drop_index(op.f("ix_slot_hold_event_type_id"), table_name="slot_hold")
    op.drop_index("ix_slot_hold_expert_start", table_name="slot_hold")
    op.drop_table("slot_hold")
