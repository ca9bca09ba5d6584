"""Incremental calendar sync: each event object as last read, and where each calendar's
reading stands

- calendar_object: one row per event object of a blocking calendar (a CalDAV resource, or
  the events of a feed with one UID): its href, ETag, UID and busy times in the window it
  was read for, so an unchanged object is neither fetched nor parsed again.
- connected_calendar: the server's sync token (RFC 6578; for a feed, its ETag), a feed's
  Last-Modified and body digest, the end and zone of the window the objects were read for,
  what the stored busy times were built from, and how many events hold them.
- calendar_connection.failures: syncs failed in a row, for backing off.

Existing calendars start with no objects, so their next sync reads them whole.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "calendar_object",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("calendar_id", sa.Integer(), nullable=False),
        sa.Column("href", sa.String(length=2048), nullable=False),
        sa.Column("etag", sa.String(length=255), nullable=False),
        sa.Column("uid", sa.Text(), nullable=False),
        sa.Column("busy", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["connected_calendar.id"],
            name=op.f("fk_calendar_object_calendar_id_connected_calendar"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_object")),
    )
    op.create_index(op.f("ix_calendar_object_calendar_id"), "calendar_object", ["calendar_id"])
    with op.batch_alter_table("connected_calendar", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sync_token", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("sync_modified", sa.String(length=255), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("content_digest", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("read_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("read_zone", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("busy_key", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("busy_events", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.drop_column("failures")
    with op.batch_alter_table("connected_calendar", schema=None) as batch_op:
        for name in (
            "busy_events",
            "busy_key",
            "read_zone",
            "read_until",
            "content_digest",
            "sync_modified",
            "sync_token",
        ):
            batch_op.drop_column(name)
    op.drop_index(op.f("ix_calendar_object_calendar_id"), table_name="calendar_object")
    op.drop_table("calendar_object")
