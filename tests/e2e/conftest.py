"""Real server processes (`python wsgi.py`, eventlet) for end-to-end tests."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import pg_database_url

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
    """Factory: start_server(database_url, REDIS_URL=...) -> a running Server."""
    started: list[Server] = []

    def start(database_url: str, **extra: str) -> Server:
        return launch_server(tmp_path, database_url, started, **extra)

    yield start
    stop_servers(started)


def make_site(database_url: str) -> Site:
    flask_cli(database_url, "db", "upgrade")
    flask_cli(database_url, "users", "create", "coach", "coach@example.com", "--expert",
              "--password", "coach-password")  # fmt: skip
    token = flask_cli(database_url, "tokens", "create", "coach").strip()
    return Site(database_url, token)


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
