"""Benchmark: do an expert's pages cost the same with a long history as without?

    .venv/bin/python bench/growth.py              # 100,000 bookings, 150 rounds (~3 minutes)
    .venv/bin/python bench/growth.py --quick      # 20,000 bookings, 40 rounds

Two fresh PostgreSQL databases on the TEST_DATABASE_URL server, migrated and seeded alike
with what the pages show: an expert `star` working around the clock with one 30-minute event
type, 40 upcoming bookings (5 of them booked by `star` with another expert), and 25 recent
past ones. The "full" database then gets the history: `star`'s past grows to 20,000
bookings, and other experts' bookings (past and upcoming, some booked by `star`'s clients)
fill it to 100,000. One `python wsgi.py` serves each database; both run at once, and each
round times every measure on both, in a random order, on kept-alive connections:

  api upcoming       GET /api/v1/bookings (both roles, the default page of 100)
  my upcoming        GET /bookings (signed in as star)
  my past, page 1    GET /bookings?scope=past
  dashboard          GET /dashboard/
  calendar feed      GET /calendar/<secret>.ics
  slots, 31 days     GET /api/v1/event-types/<id>/slots (cached, as most answers are)
  booking            POST /api/v1/event-types/<id>/bookings on a free slot
  slots after a booking  the same slots GET right after (a cache miss)

It prints each measure's median on both and their ratio (full / empty). Targets: at most
1.3x for the listings, the dashboard and the feed; at most 1.1x for slots and a booking.
Exit status 0 whether targets are met or not; non-zero when the benchmark could not run or
a request failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import (  # noqa: E402
    ServerGroup,
    clean_env,
    flask_cli,
    fresh_postgres,
    median,
)

PASSWORD = "bench-growth-password"
FEED_SECRET = "bench-growth-feed-secret-0123456789"
UPCOMING, RECENT_PAST, AS_CLIENT = 40, 25, 5
OTHER_EXPERTS = 200
LISTING_TARGET, FLAT_TARGET = 1.3, 1.1


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def booking_row(expert_id, event_type_id, start, client_id=None, minutes=30) -> dict:
    return {
        "uid": secrets.token_hex(16),
        "expert_id": expert_id,
        "event_type_id": event_type_id,
        "client_id": client_id,
        "name": "Client",
        "email": "client@example.com",
        "notes": "",
        "start_at": start,
        "end_at": start + timedelta(minutes=minutes),
        "status": "confirmed",
        "video_url": "https://zoom.us/j/1",
        "cancel_reason": "",
        "sequence": 0,
        "manage_token_hash": secrets.token_hex(32),
        "timezone": "",
        "created_at": start - timedelta(days=3),
        "updated_at": start - timedelta(days=3),
    }


def seed(database_url: str, total: int, star_past: int) -> dict:
    """Seed one database (see the module's docstring); `total` 0 means no history."""
    import sqlalchemy as sa

    from expertbook import create_app
    from expertbook.accounts import create_api_token
    from expertbook.availability import set_availability
    from expertbook.event_types import save_event_type
    from expertbook.extensions import db
    from expertbook.models import Booking, User, hash_token
    from expertbook.passwords import hash_password

    app = create_app("development", SQLALCHEMY_DATABASE_URI=database_url, ASYNC_MODE="threading")
    with app.app_context():
        confirmed = datetime.now(UTC)

        def user(name, expert=False):
            person = User(
                username=name,
                email=f"{name}@example.com",
                password_hash=hash_password(PASSWORD) if name == "star" else "!",
                timezone="UTC",
                is_expert=expert,
                email_confirmed_at=confirmed,
            )
            db.session.add(person)
            return person

        star, other = user("star", expert=True), user("other", expert=True)
        star.calendar_secret_hash = hash_token(FEED_SECRET)
        for person in (star, other):
            set_availability(person, "UTC", {day: [(0, 1440)] for day in range(7)})
        fields = {"title": "Call", "slug": "call", "duration_minutes": 30, "max_days_ahead": 90}
        call = save_event_type(star, fields)
        elsewhere = save_event_type(other, fields)
        db.session.commit()
        token = create_api_token(star, "bench")
        db.session.commit()

        hour = now_hour()
        # Star's upcoming at 10:00 on each of the next 40 days (slots stay free around them),
        # the bookings star made with `other`, and the recent past that fills a page.
        rows = [
            booking_row(star.id, call.id, hour + timedelta(days=1 + d)) for d in range(UPCOMING)
        ]
        rows += [
            booking_row(other.id, elsewhere.id, hour + timedelta(days=2 + d, hours=3), star.id)
            for d in range(AS_CLIENT)
        ]
        rows += [booking_row(star.id, call.id, hour - timedelta(hours=2 * (1 + i)))
                 for i in range(RECENT_PAST)]  # fmt: skip
        insert(db, Booking, rows)
        if total:
            history(db, Booking, User, star, call, total - len(rows), star_past - RECENT_PAST)
        with db.engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))  # planner statistics, as a database in use has
        count = db.session.scalar(sa.select(sa.func.count(Booking.id)))
        ids = {"event_type": call.id, "token": token, "bookings": count}
        db.session.remove()
        db.engine.dispose()
    return ids


def insert(db, model, rows: list[dict]) -> None:
    import sqlalchemy as sa

    for i in range(0, len(rows), 5000):
        db.session.execute(sa.insert(model.__table__), rows[i : i + 5000])
    db.session.commit()


def history(db, Booking, User, star, call, count: int, star_past: int) -> None:  # noqa: N803
    """`star_past` older bookings of star (one every 2 hours back from the recent ones) and
    other experts' bookings, two years back to three months ahead, to make `count` rows."""
    from expertbook.models import EventType

    hour = now_hour()
    start = hour - timedelta(hours=2 * (RECENT_PAST + 1))
    insert(db, Booking, [booking_row(star.id, call.id, start - timedelta(hours=2 * i))
                         for i in range(star_past)])  # fmt: skip
    experts = [
        User(username=f"expert{i}", email=f"expert{i}@example.com", password_hash="!",
             is_expert=True, timezone="UTC")
        for i in range(OTHER_EXPERTS)
    ]  # fmt: skip
    clients = [
        User(username=f"client{i}", email=f"client{i}@example.com", password_hash="!")
        for i in range(OTHER_EXPERTS)
    ]
    db.session.add_all(experts + clients)
    db.session.flush()
    types = [EventType(expert=e, slug="call", title="Call", duration_minutes=30) for e in experts]
    db.session.add_all(types)
    db.session.commit()
    rest = count - star_past
    per_expert = -(-rest // OTHER_EXPERTS)
    rows, first = [], hour - timedelta(days=730)
    for i, event_type in enumerate(types):
        for j in range(min(per_expert, rest - len(rows))):
            client = clients[(i + j) % len(clients)].id if j % 3 == 0 else None
            # One every ~2 days from two years back: mostly past, some upcoming.
            begin = first + timedelta(hours=42 * j + i % 24)
            rows.append(booking_row(event_type.expert_id, event_type.id, begin, client))
        if len(rows) >= 20_000:
            insert(db, Booking, rows)
            rest -= len(rows)
            rows = []
    insert(db, Booking, rows)


class Browser:
    """One kept-alive connection to a server, with its cookies (a signed-in session)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        """(status, body, milliseconds); the cookies go with pages, never with the API."""
        all_headers = dict(headers or {})
        if self.cookies and not path.startswith(("/api/", "/calendar/")):
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        began = time.perf_counter()
        self.conn.request(method, path, body=body, headers=all_headers)
        response = self.conn.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - began) * 1000
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, data, elapsed

    def sign_in(self, login: str, password: str) -> None:
        _, page, _ = self.request("GET", "/auth/login")
        csrf = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        form = urlencode({"login": login, "password": password, "csrf_token": csrf.decode()})
        status, _, _ = self.request(
            "POST", "/auth/login", form.encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        if status != 302:
            raise SystemExit(f"sign-in on port {self.port} answered {status}")


def measures(site: dict, day0: datetime) -> dict:
    """name -> (method, path, body maker or None, headers)."""
    auth = {"Authorization": f"Bearer {site['token']}"}
    event_type = site["event_type"]
    first, last = day0.date() + timedelta(days=1), day0.date() + timedelta(days=31)
    slots = f"/api/v1/event-types/{event_type}/slots?from={first}&to={last}&tz=UTC"
    return {
        "api upcoming": ("GET", "/api/v1/bookings", auth),
        "my upcoming": ("GET", "/bookings", {}),
        "my past, page 1": ("GET", "/bookings?scope=past", {}),
        "dashboard": ("GET", "/dashboard/", {}),
        "calendar feed": ("GET", f"/calendar/{FEED_SECRET}.ics", {}),
        "slots, 31 days": ("GET", slots, {}),
        "booking": (
            "POST",
            f"/api/v1/event-types/{event_type}/bookings",
            {"Content-Type": "application/json"},
        ),
        "slots after a booking": ("GET", slots, {}),
    }


FLAT = {"slots, 31 days", "booking", "slots after a booking"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 bookings, 40 rounds")
    parser.add_argument("--rounds", type=int, help="rounds of every measure (default 150)")
    parser.add_argument(
        "--database-server",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    total, star_past = (20_000, 4_000) if args.quick else (100_000, 20_000)
    rounds = args.rounds or (40 if args.quick else 150)

    logdir = Path(tempfile.mkdtemp(prefix="expertbook-growth-"))
    sites, group = {}, ServerGroup(logdir)
    for name, rows in (("empty", 0), ("full", total)):
        url = fresh_postgres(args.database_server, f"expertbook_bench_growth_{name}")
        env = clean_env(DATABASE_URL=url, SECRET_KEY="bench-growth", RATELIMIT_ENABLED="false",
                        ACCESS_LOG="false", WORKER_IN_PROCESS="false")  # fmt: skip
        flask_cli(env, "db", "upgrade")
        began = time.monotonic()
        sites[name] = seed(url, rows, star_past)
        print(f"{name}: {sites[name]['bookings']:,} bookings ({time.monotonic() - began:.0f} s)")
        sites[name]["server"] = group.start("wsgi.py", 1, env)[0]
    try:
        return run(sites, rounds)
    finally:
        group.stop()


def run(sites: dict, rounds: int) -> int:
    day0 = now_hour()
    browsers = {}
    for name, site in sites.items():
        browsers[name] = Browser(site["server"].port)
        browsers[name].sign_in("star", PASSWORD)
    times: dict[str, dict[str, list[float]]] = {}
    # Free starts for the bookings: half past the hour, days 1-31, never star's 10:00.
    starts = [
        day0 + timedelta(days=1 + i // 20, hours=i % 20, minutes=30) for i in range(rounds + 5)
    ]
    plans = {name: measures(site, day0) for name, site in sites.items()}
    for r in range(-5, rounds):  # five warm-up rounds, not counted
        body = json.dumps({"start": iso(starts[r + 5]), "name": "Bench", "email": "b@example.com"})
        for measure in plans["empty"]:
            order = list(sites)
            random.shuffle(order)
            for name in order:
                method, path, headers = plans[name][measure]
                sent = body.encode() if method == "POST" else None
                status, data, elapsed = browsers[name].request(method, path, sent, headers)
                if status not in (200, 201):
                    raise SystemExit(f"{name}: {method} {path}: {status} {data[:300]!r}")
                if r >= 0:
                    times.setdefault(measure, {}).setdefault(name, []).append(elapsed)
    print(f"\n{rounds} rounds, medians in ms; ratio = full / empty, same run")
    print(f"{'measure':<24}{'empty':>9}{'full':>9}{'ratio':>8}  target")
    for measure, by_site in times.items():
        empty, full = median(by_site["empty"]), median(by_site["full"])
        target = FLAT_TARGET if measure in FLAT else LISTING_TARGET
        ratio = full / empty
        verdict = "met" if ratio <= target else "MISSED"
        print(f"{measure:<24}{empty:9.2f}{full:9.2f}{ratio:7.2f}x  {target}x {verdict}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
