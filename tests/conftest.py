"""Shared fixtures: apps on SQLite and PostgreSQL, clients, and factories for test data."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import g, has_app_context
from flask.testing import FlaskClient
from jinja2.bccache import Bucket, BytecodeCache

from config import TestingConfig, normalize_database_url
from expertbook import create_app
from expertbook.extensions import db as _db
from expertbook.models import EventType, User, utcnow
from expertbook.passwords import verify_password

pytest_plugins = [
    "tests.booking_fixtures",
    "tests.browser_session",
    "tests.calendar_servers",
    "tests.mail_inbox",
]


def _memoize_url_builders() -> None:
    """Make each app's URL builders once per run instead of once per app.

    Nearly all of create_app's time (and every test makes an app) is Werkzeug compiling,
    for each of the app's ~80 URL rules, two small builder functions from a generated AST.
    A builder is a pure function of the rule's text, its parsed parts and its defaults (it
    reaches the rule's converters through its `self` argument when it runs), so a rule
    equal in all of those gets the very same function, bound to its own Rule as before.
    Only for the Werkzeug whose `Rule._compile_builder` this was checked against (3.x)."""
    from importlib.metadata import version

    from werkzeug.routing import rules

    if not version("werkzeug").startswith("3.") or getattr(rules.Rule, "_memoized", False):
        return
    original = rules.Rule._compile_builder
    builders: dict = {}

    def _compile_builder(self, append_unknown: bool = True):
        defaults = self.defaults or {}
        dynamic = {data for is_dynamic, data in self._trace if is_dynamic}
        key = (
            self.rule,
            append_unknown,
            tuple(self._trace),
            tuple(
                (str(name), self._converters[name].to_url(value) if name in dynamic else None)
                for name, value in defaults.items()
            ),
        )
        builder = builders.get(key)
        if builder is None:
            builder = builders[key] = original(self, append_unknown)
        return builder

    rules.Rule._compile_builder = _compile_builder
    rules.Rule._memoized = True


_memoize_url_builders()

CI = os.environ.get("CI", "").lower() == "true"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct horse battery"


def unavailable(reason: str):
    """Skip a test whose service is missing, except in CI, where that is a failure."""
    if CI:
        pytest.fail(f"{reason} (CI=true: services must be up)", pytrace=False)
    pytest.skip(reason)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


# Databases this run made; each name carries the run's process id, so two runs against one
# server (a developer's and CI's) never drop each other's databases.
_created_databases: list[str] = []


def _admin_engine() -> sa.Engine:
    server = sa.make_url(normalize_database_url(TEST_DATABASE_URL))
    return sa.create_engine(server, isolation_level="AUTOCOMMIT")


def pg_database_url(name: str) -> str:
    """A fresh, empty PostgreSQL database for `name`, this run's own, on the
    TEST_DATABASE_URL server; dropped when the run ends."""
    if not _reachable(TEST_DATABASE_URL):
        unavailable(f"PostgreSQL not reachable at {TEST_DATABASE_URL}")
    name = f"{name}_{os.getpid()}"
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    if name not in _created_databases:
        _created_databases.append(name)
    return engine.url.set(database=name).render_as_string(hide_password=False)


def pytest_sessionfinish(session, exitstatus):
    """Drop this run's databases (session fixtures, e2e servers included, are torn down)."""
    if not _created_databases:
        return
    engine = _admin_engine()
    with engine.connect() as conn:
        for name in _created_databases:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _reachable(TEST_REDIS_URL):
        unavailable(f"Redis not reachable at {TEST_REDIS_URL}")
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One argon2id hash of PASSWORD for every factory-made user, made with argon2's
    smallest costs. A hash carries its own costs and verify_password reads them from it, so
    a log-in checks it by the same code in microseconds instead of the ~0.2 s of CPU that
    the production costs take (hundreds of tests log in). Passwords set through the app
    (sign-up, change, reset) are still hashed by hash_password at the production costs."""
    from argon2 import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    assert verify_password(cheap, PASSWORD) and not verify_password(cheap, PASSWORD + "!")
    return cheap


@pytest.fixture(scope="session")
def pg_migrated_url() -> str:
    """A PostgreSQL database migrated to head once per test session."""
    from flask_migrate import upgrade

    url = pg_database_url("expertbook_test")
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        upgrade()
        _db.engine.dispose()
    return url


class Client(FlaskClient):
    """The test's app context stays pushed, so requests share it (and its db session). Each
    request still gets an empty `g`, as in production: Flask-Login and Flask-WTF cache the
    user and the CSRF token there."""

    def open(self, *args, **kwargs):
        if has_app_context():
            g.__dict__.clear()
        return super().open(*args, **kwargs)


class _SharedTemplateCode(BytecodeCache):
    """Compiled templates kept for the run, in memory, for every app the fixtures make.

    Every test makes its own app, and so its own Jinja environment, which would lex, parse
    and compile each template it renders afresh (a sixth of a page-rendering test's time).
    The apps' environments are configured alike, and Jinja checks each entry against its
    template's source (a changed template is compiled again), so one app's code serves all."""

    def __init__(self):
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_template_code = _SharedTemplateCode()


def _configure(app):
    app.test_client_class = Client
    app.jinja_env.bytecode_cache = _template_code
    return app


_sqlite_template: list[Path] = []  # the run's one SQLite file made by create_all


def _sqlite_schema(path: Path) -> None:
    """Give the new SQLite file `path` the models' tables: the first time by create_all, into
    a template file of the run's own; every time a copy of that template (the same schema,
    without the DDL's cost in each test)."""
    if not _sqlite_template:
        folder = Path(tempfile.mkdtemp(prefix="expertbook-sqlite-template-"))
        atexit.register(shutil.rmtree, folder, True)
        template = folder / "template.db"
        app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{template}")
        with app.app_context():
            _db.create_all()
            _db.session.remove()
            _db.engine.dispose()
        _sqlite_template.append(template)
    copy_sqlite(_sqlite_template[0], path)


def copy_sqlite(source_path, target_path) -> None:
    """Copy the SQLite database at `source_path` into `target_path` (the backup API: a
    consistent copy, however the source was written)."""
    source = sqlite3.connect(source_path)
    target = sqlite3.connect(target_path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def _without_fsync(dbapi_connection, _record) -> None:
    # A test's database is thrown away with the test: no commit needs to reach the disk
    # before the next statement (the WAL still keeps each transaction atomic). With the
    # default FULL, every commit waits for an fsync, the bulk of an HTTP test's wall time.
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _sqlite_app(tmp_path):
    path = tmp_path / "test.db"
    _sqlite_schema(path)
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}")
    with app.app_context():
        sa.event.listen(_db.engine, "connect", _without_fsync)
    return _configure(app)


def _pg_app(url, **overrides):
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, **overrides)
    with app.app_context():
        tables = ", ".join(f'"{t.name}"' for t in _db.metadata.sorted_tables)
        _db.session.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        _db.session.commit()
    return _configure(app)


@pytest.fixture(autouse=True)
def _no_backpressure_left_over():
    """Forget a delivery worker's backpressure reports (expertbook/outbox/pressure.py,
    process-wide) before and after each test: one test's worker must not make another
    test's bookings wait."""
    from expertbook.outbox import pressure

    pressure.reset()
    yield
    pressure.reset()


def _pushed(app):
    """Yield `app` with its context pushed; then close its session and connections."""
    with app.app_context():
        yield app
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def app(tmp_path):
    """The app on a fresh SQLite file, with an app context pushed for the test."""
    app = _sqlite_app(tmp_path)
    yield from _pushed(app)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request, tmp_path):
    """The app on each database: SQLite, and PostgreSQL migrated by the real migrations."""
    if request.param == "sqlite":
        app = _sqlite_app(tmp_path)
    else:
        app = _pg_app(request.getfixturevalue("pg_migrated_url"))
    yield from _pushed(app)


@pytest.fixture
def pg_app(pg_migrated_url):
    app = _pg_app(pg_migrated_url)
    yield from _pushed(app)


@pytest.fixture
def pg_app_repeatable_read(pg_migrated_url):
    """pg_app on a server whose default isolation is REPEATABLE READ, not READ COMMITTED."""
    options = {"connect_args": {"options": "-c default_transaction_isolation=repeatable\\ read"}}
    app = _pg_app(pg_migrated_url, SQLALCHEMY_ENGINE_OPTIONS=options)
    yield from _pushed(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(password_hash):
    """Factory: make_user("ann", expert=True, timezone="Europe/Berlin") -> committed User;
    its address is confirmed unless told `email_confirmed_at=None`."""
    counter = iter(range(1, 10_000))

    def make(username: str | None = None, *, expert: bool = False, **fields) -> User:
        username = username or f"user{next(counter)}"
        user = User(
            username=username,
            email=fields.pop("email", f"{username}@example.com"),
            password_hash=password_hash,
            is_expert=expert,
            timezone=fields.pop("timezone", "UTC"),
            email_confirmed_at=fields.pop("email_confirmed_at", utcnow()),
            **fields,
        )
        _db.session.add(user)
        _db.session.commit()
        return user

    return make


@pytest.fixture
def make_event_type():
    """Factory: make_event_type(expert, duration_minutes=30, ...) -> committed EventType."""

    def make(expert: User, **fields) -> EventType:
        fields.setdefault("slug", f"meeting-{len(expert.event_types) + 1}")
        fields.setdefault("title", "Meeting")
        fields.setdefault("duration_minutes", 30)
        event_type = EventType(expert=expert, **fields)
        _db.session.add(event_type)
        _db.session.commit()
        return event_type

    return make


class AuthActions:
    def __init__(self, client):
        self.client = client

    def csrf_token(self, path: str = "/auth/login") -> str:
        import re

        page = self.client.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
            r'name="csrf-token" content="([^"]+)"', page
        )
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, login: str, password: str = PASSWORD, **extra):
        return self.client.post(
            "/auth/login",
            data={"login": login, "password": password, "csrf_token": self.csrf_token(), **extra},
        )

    def logout(self):
        return self.client.post("/auth/logout", data={"csrf_token": self.csrf_token("/profile")})

    def post(self, path: str, data: dict | None = None, **kwargs):
        """A form POST with a valid CSRF token taken from the page at `path`."""
        data = {"csrf_token": self.csrf_token(kwargs.pop("token_from", path)), **(data or {})}
        return self.client.post(path, data=data, **kwargs)


@pytest.fixture
def auth(client):
    return AuthActions(client)
