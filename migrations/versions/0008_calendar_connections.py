"""Connected calendars: CalDAV accounts and ICS feeds, their calendars, and busy times

An expert's own calendar blocks their booking pages: busy times are read off the request
path by a periodic sync and stored here, in pieces of at most 720 minutes (the same bound
the busy query relies on for bookings). At most one calendar of an expert receives
bookings (a partial unique index).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BUSY_LENGTH = {
    "postgresql": "end_at - start_at <= interval '720 minutes'",
    "sqlite": "strftime('%s', end_at) - strftime('%s', start_at) <= 43200",
}


def upgrade():
    op.create_table(
        "calendar_connection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sync_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["expert_id"],
            ["user.id"],
            name=op.f("fk_calendar_connection_expert_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_connection")),
    )
    op.create_index(
        op.f("ix_calendar_connection_expert_id"), "calendar_connection", ["expert_id"]
    )
    op.create_index(
        op.f("ix_calendar_connection_next_sync_at"), "calendar_connection", ["next_sync_at"]
    )
    op.create_table(
        "connected_calendar",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("blocks", sa.Boolean(), nullable=False),
        sa.Column("writes", sa.Boolean(), nullable=False),
        sa.Column("busy_digest", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["calendar_connection.id"],
            name=op.f("fk_connected_calendar_connection_id_calendar_connection"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"],
            ["user.id"],
            name=op.f("fk_connected_calendar_expert_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connected_calendar")),
        sa.UniqueConstraint(
            "connection_id", "url", name="uq_connected_calendar_connection_url"
        ),
    )
    op.create_index(
        op.f("ix_connected_calendar_connection_id"), "connected_calendar", ["connection_id"]
    )
    op.create_index(
        "uq_connected_calendar_writes",
        "connected_calendar",
        ["expert_id"],
        unique=True,
        postgresql_where=sa.text("writes"),
        sqlite_where=sa.text("writes"),
    )
    op.create_table(
        "busy_time",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("calendar_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_busy_time_ends_after_start")),
        sa.CheckConstraint(
            BUSY_LENGTH[op.get_bind().dialect.name], name=op.f("ck_busy_time_length_in_range")
        ),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["connected_calendar.id"],
            name=op.f("fk_busy_time_calendar_id_connected_calendar"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"],
            ["user.id"],
            name=op.f("fk_busy_time_expert_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_busy_time")),
    )
    op.create_index(op.f("ix_busy_time_calendar_id"), "busy_time", ["calendar_id"])
    op.create_index("ix_busy_time_expert_start", "busy_time", ["expert_id", "start_at"])


def downgrade():
    op.drop_table("busy_time")
    op.drop_table("connected_calendar")
    op.drop_table("calendar_connection")
