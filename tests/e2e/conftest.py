"""Real server processes (`python wsgi.py`, eventlet) for end-to-end tests."""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import TEST_DATABASE_URL, copy_sqlite, pg_database_url

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-shared-secret"  # one key for all processes, so a session works on each


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "REDIS_", "MAIL_"))}
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET,
        ACCESS_LOG="false",
        RATELIMIT_ENABLED="false",
        PYTHONUNBUFFERED="1",
        # This test run's own pub/sub channel: other runs may share the Redis server.
        SOCKETIO_CHANNEL=f"expertbook-test-{os.getpid()}",
    )
    env.update(extra)
    return env


def flask_cli(database_url: str, *args: str, input: str | None = None) -> str:
    """Run `flask --app wsgi ...` against `database_url`, return its stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=server_env(database_url),
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 30):
        """One HTTP request on a new connection: (status, parsed JSON or text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = json.dumps(body) if body is not None else None
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            raw = response.read().decode()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw


@dataclass
class Site:
    """A migrated database with an expert `coach` (UTC, every day 00:00-24:00) and a
    30-minute event type, plus the servers started on it."""

    database_url: str
    token: str
    servers: list[Server] = field(default_factory=list)
    event_type_id: int | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _wait_until_up(server: Server, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if server.process.poll() is not None:
            break
        try:
            if server.request("GET", "/healthz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server did not start:\n{server.log.read_text()[-3000:]}")


def launch_server(folder: Path, database_url: str, started: list[Server], **extra: str) -> Server:
    """Start `python wsgi.py` on a free port (log in `folder`), add it to `started`, and
    return it once /healthz answers."""
    port = free_port()
    log = folder / f"server-{port}.log"
    env = server_env(
        database_url, HOST="127.0.0.1", PORT=str(port), BASE_URL=f"http://127.0.0.1:{port}"
    )
    env.update(extra)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "wsgi.py"], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    server = Server(port, process, log)
    started.append(server)
    _wait_until_up(server)
    return server


def stop_servers(started: list[Server]) -> None:
    for server in started:
        server.process.terminate()
    for server in started:
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()


@pytest.fixture
def start_server(tmp_path):
    """Factory: start_server(database_url, REDIS_URL=...) -> a running Server;
    start_server.many(2, database_url, ...) -> two, started at once."""
    started: list[Server] = []

    def start(database_url: str, **extra: str) -> Server:
        return launch_server(tmp_path, database_url, started, **extra)

    def many(count: int, database_url: str, **extra: str) -> list[Server]:
        """`count` servers started side by side (each start is mostly a Python importing
        the app), in the order they were asked for."""
        with ThreadPoolExecutor(count) as pool:
            launches = [pool.submit(start, database_url, **extra) for _ in range(count)]
        return [launch.result() for launch in launches]  # raises when one did not start

    start.many = many
    yield start
    stop_servers(started)


# `flask --app wsgi <command>` for each command in turn, in one Python: the `flask`
# command's own group (flask.cli imported before wsgi, so unpatched, as there), each
# command's stdout kept apart; the first failure ends the run with a traceback.
_FLASK_COMMANDS = r"""
import contextlib, io, json, sys
from flask.cli import cli
outputs = []
for args in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["--app", "wsgi", *args], prog_name="flask", standalone_mode=False)
    if code not in (None, 0):
        sys.exit(f"flask {' '.join(args)} exited {code}:\n{out.getvalue()}")
    outputs.append(out.getvalue())
print(json.dumps(outputs))
"""


def flask_cli_many(database_url: str, *commands: str) -> list[str]:
    """Run each of `commands` (words split on spaces) as `flask --app wsgi <command>`
    against `database_url`, in one process (a fresh Python importing the app costs
    seconds); return their stdouts."""
    argv = [command.split(" ") for command in commands]
    result = subprocess.run(
        [sys.executable, "-c", _FLASK_COMMANDS, json.dumps(argv)],
        cwd=ROOT,
        env=server_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _build_site(database_url: str) -> Site:
    """The site made the way an operator makes one: `flask db upgrade`, then the CLI's
    `users create` and `tokens create`."""
    *_, token = flask_cli_many(
        database_url,
        "db upgrade",
        "users create coach coach@example.com --expert --password coach-password",
        "tokens create coach",
    )
    return Site(database_url, token.strip())


# Even in one process the CLI run above takes seconds on a loaded machine, so the run
# builds one site per kind with it, a template, and every site after that is a copy of
# it: a SQLite file copied with the backup API, a PostgreSQL database made with CREATE
# DATABASE ... TEMPLATE on the shared test server. The copies hold the same rows
# (migrated schema, coach, token) as a site built afresh.
_templates: dict[str, Site] = {}
_template_folder: Path | None = None
_templates_lock = threading.Lock()  # a test may make a site in a thread of its own


def _sqlite_path(database_url: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(database_url[len(prefix) :]) if database_url.startswith(prefix) else None


def _sqlite_site(path: Path) -> Site:
    global _template_folder
    template = _templates.get("sqlite")
    if template is None:
        _template_folder = Path(tempfile.mkdtemp(prefix="expertbook-site-template-"))
        atexit.register(shutil.rmtree, _template_folder, True)
        template = _templates["sqlite"] = _build_site(
            f"sqlite:///{_template_folder / 'template.db'}"
        )
    copy_sqlite(_sqlite_path(template.database_url), path)
    return Site(f"sqlite:///{path}", template.token)


def _on_shared_postgres(database_url: str) -> bool:
    url, shared = sa.make_url(database_url), sa.make_url(TEST_DATABASE_URL)
    return url.get_backend_name() == "postgresql" and (url.host, url.port or 5432) == (
        shared.host,
        shared.port or 5432,
    )


def _postgres_site(database_url: str) -> Site:
    template = _templates.get("postgresql")
    if template is None:
        template = _templates["postgresql"] = _build_site(pg_database_url("expertbook_template"))
    name = sa.make_url(database_url).database
    source = sa.make_url(template.database_url).database
    engine = sa.create_engine(
        sa.make_url(database_url).set(drivername="postgresql+psycopg2", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    finally:
        engine.dispose()
    return Site(database_url, template.token)


def make_site(database_url: str) -> Site:
    """A migrated database with the coach and an API token for them (no hours, no event
    type yet): an empty SQLite file or an empty database on the shared PostgreSQL becomes a
    copy of the run's template; any other database is built with the CLI."""
    path = _sqlite_path(database_url)
    if path is not None and (not path.exists() or path.stat().st_size == 0):
        with _templates_lock:
            return _sqlite_site(path)
    if _on_shared_postgres(database_url):
        with _templates_lock:
            return _postgres_site(database_url)
    return _build_site(database_url)


def setup_coach(site: Site, server: Server, **event_type_fields) -> int:
    """Give the coach round-the-clock hours and a 30-minute event type, via the API."""
    week = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    status, body = server.request(
        "PUT", "/api/v1/availability", {"timezone": "UTC", "weekly": week}, site.auth
    )
    assert status == 200, body
    fields = {"title": "Sync", "slug": "sync", "duration_minutes": 30, **event_type_fields}
    status, body = server.request("POST", "/api/v1/event-types", fields, site.auth)
    assert status == 201, body
    site.event_type_id = body["id"]
    return body["id"]


def future_slot(days: int = 2, hour: int = 10) -> str:
    start = (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def pg_site() -> Site:
    return make_site(pg_database_url("expertbook_e2e"))


@pytest.fixture
def sqlite_site(tmp_path) -> Site:
    return make_site(f"sqlite:///{tmp_path / 'e2e.db'}")
