"""Benchmark: 31 days of slots against the trivial ping, on a real server process.

    .venv/bin/python bench/slots.py            # PostgreSQL (the TEST_DATABASE_URL server)
    .venv/bin/python bench/slots.py --sqlite   # a fresh SQLite file

A fresh database is migrated and seeded with an expert who works around the clock, three
event types and 2,000 confirmed, non-overlapping bookings over the next 31 days. `python
wsgi.py` then serves it, and one kept-alive connection times the slots endpoint and
`/api/v1/ping`, interleaved, and the slots endpoint again right after each change (a
cache miss). Target: slots median at most 5x the ping median and under 25 ms.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import normalize_database_url  # noqa: E402

DAYS = 31
CELL = timedelta(minutes=20)  # bookings sit at the start of 20-minute cells, so never overlap
# slug, minutes. Bookings alternate quick and call; "quick" fits in what they leave free,
# so its answer is the largest (~1,460 slots), "call" gets ~230 and "session" almost none.
EVENT_TYPES = [("quick", 10), ("call", 20), ("session", 60)]
SLOTS_TARGET_MS = 25.0
RATIO_TARGET = 5.0


def fresh_postgres(server_url: str, name: str) -> str:
    """Drop and create database `name` on the server of `server_url`; return its URL."""
    server = sa.make_url(normalize_database_url(server_url))
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def seed(database_url: str, bookings: int) -> dict[str, int]:
    """The expert, their hours, event types and bookings; returns the type ids by slug."""
    from expertbook import create_app
    from expertbook.availability import set_availability
    from expertbook.event_types import save_event_type
    from expertbook.extensions import db
    from expertbook.models import Booking, User

    app = create_app("development", SQLALCHEMY_DATABASE_URI=database_url, ASYNC_MODE="threading")
    with app.app_context():
        expert = User(
            username="bench", email="bench@example.com", password_hash="!", is_expert=True
        )
        db.session.add(expert)
        set_availability(expert, "UTC", {weekday: [(0, 1440)] for weekday in range(7)})
        event_types = [
            save_event_type(expert, {"title": slug.title(), "slug": slug, "duration_minutes": m})
            for slug, m in EVENT_TYPES
        ]
        db.session.commit()

        first = datetime.combine(
            datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC
        )
        # Every tenth cell stays empty, so some slots of every type remain.
        cells = [first + CELL * i for i in range(int(timedelta(days=DAYS) / CELL)) if i % 10 != 9]
        if len(cells) < bookings:
            raise SystemExit(f"at most {len(cells)} bookings fit in {DAYS} days")
        rows = []
        for i, start in enumerate(cells[:bookings]):
            event_type = event_types[i % 2]  # quick and call; neither outgrows its cell
            rows.append(
                {
                    "uid": secrets.token_hex(16),
                    "expert_id": expert.id,
                    "event_type_id": event_type.id,
                    "name": f"Client {i}",
                    "email": f"client{i}@example.com",
                    "notes": "",
                    "start_at": start,
                    "end_at": start + timedelta(minutes=event_type.duration_minutes),
                    "status": Booking.CONFIRMED,
                    "video_url": "",
                    "cancel_reason": "",
                    "sequence": 0,
                    "manage_token_hash": secrets.token_hex(32),
                    "created_at": datetime.now(UTC),
                    "updated_at": datetime.now(UTC),
                }
            )
        with db.engine.begin() as conn:
            conn.execute(sa.insert(Booking.__table__), rows)
            # Planner statistics, as a database in use has them (autovacuum would catch up).
            conn.execute(sa.text("ANALYZE"))
        ids = {event_type.slug: event_type.id for event_type in event_types}
        db.session.remove()
        db.engine.dispose()
    return ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env: dict[str, str], log) -> subprocess.Popen:
    """`python wsgi.py`, once its /healthz answers."""
    server = subprocess.Popen(
        [sys.executable, "wsgi.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}; see {log.name}")
        try:
            conn = http.client.HTTPConnection(env["HOST"], int(env["PORT"]), timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit(f"the server did not answer within 30 s; see {log.name}")


def timed_get(conn: http.client.HTTPConnection, path: str) -> tuple[float, bytes]:
    """Milliseconds for one request, response body read in full."""
    began = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - began) * 1000
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
    return elapsed, body


def summary(name: str, times: list[float]) -> str:
    p90 = statistics.quantiles(times, n=10)[8]
    return (
        f"{name:<6} median {statistics.median(times):7.2f} ms   p90 {p90:7.2f} ms   "
        f"min {min(times):7.2f} ms"
    )


def run(host: str, port: int, event_type_id: int, requests: int, database_url: str) -> bool:
    """Time the endpoints interleaved on one connection; print figures; True if on target.

    "slots" is the usual case: answers are cached per expert schedule version, so repeated
    views of a month cost one query. "cold" forces a miss before each request (a bump of
    the version, as any booking or change of hours makes) and so times the full path:
    2,000 bookings read, slots computed, JSON written."""
    today = datetime.now(UTC).date()
    first, last = today + timedelta(days=1), today + timedelta(days=DAYS)
    slots_path = f"/api/v1/event-types/{event_type_id}/slots?from={first}&to={last}"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    for _ in range(20):  # warm-up: connection pool, zone cache, code paths
        _, body = timed_get(conn, slots_path)
        timed_get(conn, "/api/v1/ping")
    engine = sa.create_engine(normalize_database_url(database_url))
    bump = sa.text('UPDATE "user" SET schedule_version = schedule_version + 1')
    slots_ms, cold_ms, ping_ms = [], [], []
    for _ in range(requests):
        slots_ms.append(timed_get(conn, slots_path)[0])
        ping_ms.append(timed_get(conn, "/api/v1/ping")[0])
        with engine.begin() as db:
            db.execute(bump)
        cold_ms.append(timed_get(conn, slots_path)[0])
    conn.close()
    engine.dispose()

    count = body.count(b'"start"')
    print(f"GET {slots_path}: {count} slots, {len(body) / 1024:.0f} KiB")
    print(summary("slots", slots_ms))
    print(summary("cold", cold_ms) + "   (cache miss: the first view after any change)")
    print(summary("ping", ping_ms))
    median_slots, ratio = (
        statistics.median(slots_ms),
        statistics.median(slots_ms) / statistics.median(ping_ms),
    )
    on_target = median_slots < SLOTS_TARGET_MS and ratio <= RATIO_TARGET
    target = f"target <= {RATIO_TARGET:.0f}x, slots median < {SLOTS_TARGET_MS:.0f} ms"
    print(f"ratio  {ratio:.1f}x ({target}): {'met' if on_target else 'MISSED'}")
    return on_target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file, not PostgreSQL")
    parser.add_argument("-n", "--requests", type=int, default=200, help="timed requests each")
    parser.add_argument("--bookings", type=int, default=2000)
    parser.add_argument("--slug", choices=[slug for slug, _ in EVENT_TYPES], default="quick")
    parser.add_argument(
        "--server",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL server URL; the benchmark makes its own database, expertbook_bench",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="expertbook-bench-"))
    if args.sqlite:
        database_url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        database_url = fresh_postgres(args.server, "expertbook_bench")
    host, port = "127.0.0.1", free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HOST": host,
        "PORT": str(port),
        "BASE_URL": f"http://{host}:{port}",
        "ACCESS_LOG": "false",
        "RATELIMIT_ENABLED": "false",
    }
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    event_type_id = seed(database_url, args.bookings)[args.slug]
    print(f"{'SQLite' if args.sqlite else 'PostgreSQL'}: {args.bookings} bookings in {DAYS} days")
    with open(workdir / "server.log", "w") as log:
        server = start_server(env, log)
        try:
            on_target = run(host, port, event_type_id, args.requests, database_url)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0 if on_target else 1


if __name__ == "__main__":
    sys.exit(main())
