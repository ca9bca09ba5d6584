"""PostgreSQL: confirmed bookings of one expert may never overlap (exclusion constraint)

The second line of defence behind the row lock in booking.book_slot. Written by hand:
Alembic's autogenerate does not see exclusion constraints. SQLite has no such constraint;
there bookings are serialized by BEGIN IMMEDIATE.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    # btree_gist lets a GiST index compare the plain integer expert_id with `=`.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute(
        "ALTER TABLE booking ADD CONSTRAINT booking_confirmed_no_overlap "
        "EXCLUDE USING gist (expert_id WITH =, tstzrange(start_at, end_at, '[)') WITH &&) "
        "WHERE (status = 'confirmed')"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE booking DROP CONSTRAINT IF EXISTS booking_confirmed_no_overlap")
