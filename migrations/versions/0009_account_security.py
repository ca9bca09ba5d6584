"""Account security: confirmed addresses, mailed tokens, two-factor sign-in

- user.email_confirmed_at: sign-up now mails a confirmation link, and Become an Expert
  needs a confirmed address. Every user that exists at this upgrade is marked confirmed
  (as of the upgrade), so nobody is locked out of Become an Expert by it: their addresses
  were taken as given until now, and experts among them already receive bookings there.
- user.totp_secret, totp_enabled_at, totp_last_counter: two-factor sign-in (TOTP), off for
  everyone at upgrade.
- email_token: password-reset and confirmation links, as SHA-256 hashes of their secrets.
- recovery_code: the hashed one-time recovery codes of two-factor sign-in.

Revision ID: 0009
Revises: 0008
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_confirmed_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=64)))
        batch_op.add_column(sa.Column("totp_enabled_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("totp_last_counter", sa.Integer()))
    now = datetime.now(UTC)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # the app keeps naive UTC text on SQLite
    bind.execute(sa.text('UPDATE "user" SET email_confirmed_at = :now'), {"now": now})

    op.create_table(
        "email_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_email_token_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_token_token_hash")),
    )
    op.create_index(op.f("ix_email_token_user_id"), "email_token", ["user_id"])
    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_recovery_code_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_code")),
    )
    op.create_index(op.f("ix_recovery_code_user_id"), "recovery_code", ["user_id"])


def downgrade():
    op.drop_index(op.f("ix_recovery_code_user_id"), table_name="recovery_code")
    op.drop_table("recovery_code")
    op.drop_index(op.f("ix_email_token_user_id"), table_name="email_token")
    op.drop_table("email_token")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("totp_last_counter")
        batch_op.drop_column("totp_enabled_at")
        batch_op.drop_column("totp_secret")
        batch_op.drop_column("email_confirmed_at")
