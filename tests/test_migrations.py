"""The real Alembic migrations, run on SQLite and on PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy.exc import IntegrityError

from config import TestingConfig
from expertbook import create_app
from expertbook.extensions import db
from tests.conftest import pg_database_url


def migrated_tables(url):
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        upgrade()
        after_upgrade = set(sa.inspect(db.engine).get_table_names())
        downgrade(revision="base")
        after_downgrade = set(sa.inspect(db.engine).get_table_names())
        upgrade()  # and up again: the downgrade left nothing behind that blocks it
        db.engine.dispose()
    return after_upgrade, after_downgrade


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_upgrade_then_downgrade_base(tmp_path, database):
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrate.db'}"
    else:
        url = pg_database_url("expertbook_migrations")
    after_upgrade, after_downgrade = migrated_tables(url)
    model_tables = set(db.metadata.tables)
    assert model_tables <= after_upgrade
    assert after_downgrade <= {"alembic_version"}


def test_models_match_the_migrations(tmp_path):
    """Autogenerate finds nothing to add: every model change has its migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'm.db'}")
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        db.engine.dispose()
    assert diff == []


SEED = [
    """INSERT INTO "user" (id, username, email, name, password_hash, timezone, is_expert, bio,
        session_version, created_at)
       VALUES (1, 'coach', 'coach@example.com', 'Coach', 'x', 'UTC', true, '', 0, :at)""",
    """INSERT INTO event_type (id, expert_id, slug, title, description, duration_minutes,
        location, buffer_before_minutes, buffer_after_minutes, min_notice_minutes,
        max_days_ahead, active, created_at)
       VALUES (1, 1, 'sync', 'Sync', '', 30, 'zoom', 0, 0, 0, 60, true, :at)""",
    """INSERT INTO booking (id, uid, expert_id, event_type_id, name, email, notes, start_at,
        end_at, status, video_url, cancel_reason, sequence, manage_token_hash, created_at,
        updated_at)
       VALUES (1001, 'u1', 1, 1, 'Ann', 'ann@example.com', '', '2030-01-07 10:00:00',
        '2030-01-07 10:30:00', 'confirmed', '', '', 0, 'h', :at, :at)""",
    """INSERT INTO idempotency_key (id, event_type_id, key, booking_id, response, created_at)
       VALUES (1, 1, 'k', 1001, '{}', :at)""",
]
TABLES = ("user", "event_type", "booking", "idempotency_key")


def _long_booking(conn, minutes: int) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO booking (uid, expert_id, event_type_id, name, email, notes, start_at,"
            " end_at, status, video_url, cancel_reason, sequence, manage_token_hash,"
            " created_at, updated_at) VALUES (:uid, 1, 1, 'Bo', 'bo@example.com', '', :start,"
            " :end, 'confirmed', '', '', 0, 'h', :start, :start)"
        ),
        {
            "uid": f"long{minutes}",
            "start": datetime(2030, 2, 1, tzinfo=UTC),
            "end": datetime(2030, 2, 1, tzinfo=UTC) + timedelta(minutes=minutes),
        },
    )


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_migrations_keep_the_data(tmp_path, database):
    """Migrations that rebuild a table on SQLite (a new CHECK, a dropped column) keep every
    row, of that table and of the tables whose foreign keys cascade from it."""
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'data.db'}"
    else:
        url = pg_database_url("expertbook_migration_data")
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)

    def counts():
        with db.engine.connect() as conn:
            return [conn.scalar(sa.text(f'SELECT count(*) FROM "{t}"')) for t in TABLES]

    with app.app_context():
        upgrade(revision="0005")
        with db.engine.begin() as conn:
            for statement in SEED:
                conn.execute(sa.text(statement), {"at": datetime(2030, 1, 1, tzinfo=UTC)})
        upgrade()
        assert counts() == [1, 1, 1, 1]
        with db.engine.begin() as conn:
            _long_booking(conn, 720)  # the longest event type's booking is fine
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            _long_booking(conn, 721)
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE event_type SET duration_minutes = 721"))
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE event_type SET buffer_after_minutes = -1"))
        downgrade(revision="0002")  # through the rebuilds of "user" on SQLite
        assert counts() == [1, 1, 2, 1]
        db.engine.dispose()


BROKEN_MIGRATION = """
revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    from alembic import op

    op.execute("DELETE FROM event_type")  # bookings left pointing nowhere (keys are off)


def downgrade():
    pass
"""


def test_a_migration_that_breaks_foreign_keys_on_sqlite_is_rolled_back(tmp_path):
    """Foreign keys are off while SQLite migrates; the check before the commit catches a
    migration that leaves rows pointing nowhere, and the whole run is undone."""
    import shutil

    from alembic.script import ScriptDirectory

    from expertbook import ROOT

    directory = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", directory)
    head = ScriptDirectory(str(directory)).get_current_head()
    (directory / "versions" / "9999_broken.py").write_text(BROKEN_MIGRATION.format(head=head))
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'fk.db'}")
    with app.app_context():
        upgrade(directory=str(directory), revision=head)
        with db.engine.begin() as conn:
            for statement in SEED:
                conn.execute(sa.text(statement), {"at": datetime(2030, 1, 1, tzinfo=UTC)})
        with pytest.raises(SystemExit):  # Flask-Migrate's way of saying the command failed
            upgrade(directory=str(directory))
        with db.engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == head
            assert conn.scalar(sa.text("SELECT count(*) FROM event_type")) == 1
        db.engine.dispose()


def test_users_from_before_0009_are_confirmed(tmp_path):
    """Nobody is locked out of Become an Expert by the upgrade that made it need a
    confirmed address."""
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'c.db'}")
    with app.app_context():
        upgrade(revision="0008")
        with db.engine.begin() as conn:
            conn.execute(sa.text(SEED[0]), {"at": datetime(2030, 1, 1, tzinfo=UTC)})
        upgrade()
        with db.engine.connect() as conn:
            confirmed = conn.scalar(sa.text('SELECT email_confirmed_at FROM "user"'))
        db.engine.dispose()
    assert confirmed is not None
