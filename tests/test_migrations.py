"""The real Alembic migrations, run on SQLite and on PostgreSQL."""

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

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
