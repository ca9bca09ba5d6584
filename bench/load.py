"""Load test (issue 17): a crowd through nginx on three app processes, for two minutes.

    .venv/bin/python bench/load.py                       # 120 s, 50 users, 500 sockets
    .venv/bin/python bench/load.py --duration 30 --users 50 --sockets 200

The deployment in deploy/ as tests/deploy/stack.py brings it up (nginx with the site file,
3 x `python wsgi.py` from the systemd unit, `flask worker`), on a fresh PostgreSQL database
(`expertbook_bench_load` on the TEST_DATABASE_URL server) and a Redis database of its own
with its own Socket.IO channel; EXPERTBOOK_ENV=production, RATELIMIT_ENABLED=false.

Seeded: one popular expert (a 15-minute event type) and six others (15 and 30 minutes,
sharing their time), all bookable round the clock for 60 days, so the crowd mostly books.
Then, at once:

- the crowd (locust, headless, run here as a library; FastHttpUser, one cookie jar and
  kept-alive connections per user): each user opens a booking page (`/<username>/<slug>
  ?date=`), reads that day's slots from the API, and most of the time books one of them
  after a moment's thought. On the popular expert's page they read two weeks and take one of
  the first three slots offered: a small set everyone races for, so stale reads meet 409;
- the open pages (bench/_load_sockets.py, two processes of their own): python-socketio clients,
  websocket transport through nginx, each joined to an event type's room, half of them the
  popular one's. Every `slot_taken` they hear is timed on arrival.

Printed: requests/s and p50/p99 by endpoint (locust's figures), bookings made, 409s, errors
(5xx apart), sockets held at the end, and page-to-update latency: from a booking's 201 at
the client to each socket in the expert's rooms hearing its `slot_taken` (p50/p99; a socket
may hear before the 201 is read, which counts as 0), also from the POST being sent. Then,
from the database: no overlapping confirmed bookings, every 201 a confirmed row, and
`flask check-invariants` (exit 0). Machine load at the start and the end, and the CPU each
part used.

Exit status: 0 when the acceptance holds (no 5xx, no invariant violation, every socket
held, page-to-update p99 under 300 ms), 1 when it does not (each miss named), 2 when the
run itself could not be made.
"""

# locust patches the standard library for gevent on import: first, before ssl and sockets.
from locust import FastHttpUser, between, events, task  # isort: skip
from locust.env import Environment  # isort: skip

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from _servers import clean_env, flask_cli, fresh_postgres, median, percentile  # noqa: E402

from tests.deploy.stack import NGINX, Stack  # noqa: E402

DB_NAME = "expertbook_bench_load"
SECRET = "bench-load-secret"  # one key for every process
POPULAR = "popular"
OTHERS = [f"expert{i}" for i in range(1, 7)]
DAYS_AHEAD = 60
POPULAR_FRONT = 3  # the popular page's first N offered slots: what the crowd races for
POPULAR_SHARE = 0.4  # of page visits, to the popular expert
BOOK_SHARE = 0.7  # of page visits that end in a booking attempt
LATENCY_TARGET_MS = 300.0
DRAIN = 70.0  # seconds the requests in flight at the end may take (locust's timeout: 60)
SETTLE = 3.0  # seconds after the crowd stops for the last slot_taken to arrive


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the site


@dataclass(frozen=True)
class EventType:
    id: int
    expert: str
    slug: str

    @property
    def page(self) -> str:
        return f"/{self.expert}/{self.slug}"


def seed(database_url: str, env: dict[str, str]) -> dict[str, str]:
    """Migrated schema and the experts; username -> API token."""
    flask_cli(env, "db", "upgrade")
    result = subprocess.run(
        [sys.executable, str(BENCH / "_load_seed.py"), database_url, POPULAR, *OTHERS],
        cwd=BENCH.parent, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"seeding failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def api(stack: Stack, method: str, path: str, body: dict, token: str) -> dict:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    status, _, raw = stack.request(method, path, json.dumps(body).encode(), headers)
    if status not in (200, 201):
        raise SystemExit(f"{method} {path}: {status} {raw[:300]!r}")
    return json.loads(raw)


def set_up_experts(stack: Stack, tokens: dict[str, str]) -> list[EventType]:
    """Round-the-clock hours (UTC) and event types, through nginx and the API."""
    week = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    kinds = {POPULAR: [("intro", 15)], **{name: [("call", 15), ("session", 30)] for name in OTHERS}}
    made = []
    for expert, types in kinds.items():
        token = tokens[expert]
        api(stack, "PUT", "/api/v1/availability", {"timezone": "UTC", "weekly": week}, token)
        for slug, minutes in types:
            fields = {"title": slug.title(), "slug": slug, "duration_minutes": minutes,
                      "max_days_ahead": DAYS_AHEAD}  # fmt: skip
            body = api(stack, "POST", "/api/v1/event-types", fields, token)
            made.append(EventType(body["id"], expert, slug))
    return made


# --------------------------------------------------------------------------- the crowd


@dataclass
class Tally:
    """What the crowd saw, beyond locust's timings."""

    statuses: Counter = field(default_factory=Counter)  # (endpoint, status or error name)
    conflicts: Counter = field(default_factory=Counter)  # 409 codes
    popular: Counter = field(default_factory=Counter)  # the popular expert's booking statuses
    booked: list = field(default_factory=list)  # (event type, uid, start, sent, answered)
    samples: list = field(default_factory=list)  # first few unexpected answers
    closing: bool = False  # the time is up: no new request starts
    in_flight: int = 0


TALLY = Tally()


class Visitor(FastHttpUser):
    """Someone with a booking link: the page, its slots, and usually a booking."""

    wait_time = between(0.5, 2.0)
    event_types: list[EventType] = []
    popular: list[EventType] = []
    others: list[EventType] = []

    def _note(self, endpoint: str, response, expected: tuple[int, ...]) -> bool:
        status = response.status_code or type(response.error).__name__
        TALLY.statuses[endpoint, status] += 1
        good = status in expected
        if good:
            response.success()
        else:
            if len(TALLY.samples) < 5:
                TALLY.samples.append(f"{endpoint} {status} {(response.text or '')[:200]!r}")
            response.failure(f"{status}")
        return good

    @task
    def visit(self) -> None:
        TALLY.in_flight += 1
        try:
            self._visit()
        finally:
            TALLY.in_flight -= 1

    def _visit(self) -> None:
        if TALLY.closing:
            return
        popular = random.random() < POPULAR_SHARE
        event_type = random.choice(self.popular if popular else self.others)
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        day = tomorrow if popular else tomorrow + timedelta(days=random.randrange(DAYS_AHEAD - 5))
        last = day + timedelta(days=13 if popular else 0)
        with self.client.get(
            f"{event_type.page}?date={day}", name="page", catch_response=True
        ) as response:
            if not self._note("page", response, (200,)):
                return
        if TALLY.closing:
            return
        query = f"from={day}&to={last}&tz=UTC"
        with self.client.get(
            f"/api/v1/event-types/{event_type.id}/slots?{query}", name="slots", catch_response=True
        ) as response:
            if not self._note("slots", response, (200,)):
                return
            slots = response.json()["slots"]
        if not slots or random.random() > BOOK_SHARE:
            return
        start = random.choice(slots[:POPULAR_FRONT] if popular else slots)["start"]
        gevent.sleep(random.uniform(0.2, 1.0))  # choosing, typing a name
        if not TALLY.closing:
            self.book(event_type, start)

    def book(self, event_type: EventType, start: str) -> None:
        n = uuid.uuid4().hex[:12]
        body = {"start": start, "name": f"Guest {n}", "email": f"guest-{n}@example.com"}
        headers = {"Idempotency-Key": uuid.uuid4().hex}  # as the booking page sends one
        sent = time.monotonic()
        with self.client.post(
            f"/api/v1/event-types/{event_type.id}/bookings",
            json=body,
            headers=headers,
            name="book",
            catch_response=True,
        ) as response:
            answered = time.monotonic()
            if not self._note("book", response, (201, 409)):
                return
            answer = response.json()
            if event_type.expert == POPULAR:
                TALLY.popular[response.status_code] += 1
            if response.status_code == 201:
                TALLY.booked.append((event_type, answer["uid"], answer["start"], sent, answered))
            else:
                TALLY.conflicts[answer["error"]["code"]] += 1


def run_crowd(url: str, event_types: list[EventType], users: int, duration: float):
    """Locust, headless, for `duration` seconds; its stats."""
    Visitor.host = url
    Visitor.event_types = event_types
    Visitor.popular = [e for e in event_types if e.expert == POPULAR]
    Visitor.others = [e for e in event_types if e.expert != POPULAR]
    env = Environment(user_classes=[Visitor], events=events)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=max(users / 10, 1))

    def progress() -> None:
        began = time.monotonic()
        while True:
            gevent.sleep(30)
            statuses = TALLY.statuses
            fives = sum(n for (_, s), n in statuses.items() if isinstance(s, int) and s >= 500)
            print(
                f"  {time.monotonic() - began:4.0f} s: {env.stats.total.num_requests} requests,"
                f" {len(TALLY.booked)} booked, {sum(TALLY.conflicts.values())} 409, "
                f"{fives} 5xx; load {load_average()}",
                flush=True,
            )

    ticker = gevent.spawn(progress)
    gevent.sleep(duration)
    # Let every request already sent be answered (a booking killed in flight would be a
    # row without its 201), then stop the users.
    TALLY.closing = True
    drain_end = time.monotonic() + DRAIN
    while TALLY.in_flight and time.monotonic() < drain_end:
        gevent.sleep(0.05)
    runner.quit()
    ticker.kill()
    return env.stats


# --------------------------------------------------------------------------- the pages


class Pages:
    """bench/_load_sockets.py: the open booking pages, in their own process."""

    def __init__(self, url: str, rooms: list[int], folder: Path):
        folder.mkdir()
        self.rooms_file, self.out_file = folder / "rooms.json", folder / "heard.json"
        self.rooms_file.write_text(json.dumps(rooms))
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "_load_sockets.py"), url, str(self.rooms_file),
             str(self.out_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def wait_joined(self) -> str:
        line = self.process.stdout.readline().strip()
        if not line.startswith("joined"):
            raise SystemExit(f"the socket process failed: {line!r}")
        return line

    def ask_report(self) -> None:
        self.process.stdin.write("report\n")
        self.process.stdin.flush()

    def report(self) -> dict:
        for line in self.process.stdout:
            if line.strip() == "reported":
                break
        self.process.wait(timeout=60)
        return json.loads(self.out_file.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


def merge_reports(reports: list[dict]) -> dict:
    merged = {"held": 0, "joined_rooms": [], "failures": [], "disconnects": 0, "heard": [],
              "lags": []}  # fmt: skip
    for report in reports:
        for key, value in report.items():
            merged[key] += value
    return merged


def socket_rooms(event_types: list[EventType], sockets: int) -> list[int]:
    """Half the pages on the popular event type, the rest spread over the others."""
    popular = [e.id for e in event_types if e.expert == POPULAR]
    others = [e.id for e in event_types if e.expert != POPULAR]
    return [popular[i % len(popular)] if i % 2 == 0 else others[i // 2 % len(others)]
            for i in range(sockets)]  # fmt: skip


def update_latencies(booked: list, heard: list, rooms: list[int], types: list[EventType]):
    """(ms from each 201 to each hearing socket, ms from each POST sent, hearings before the
    201 was read, sockets that never heard a booking of their expert): one figure per
    (booking, socket in its rooms)."""
    expert_of = {e.id: e.expert for e in types}
    arrivals: dict[tuple[str, str], list[float]] = {}
    for room, start, at in heard:
        arrivals.setdefault((expert_of[room], start), []).append(at)
    listening = Counter(expert_of[room] for room in rooms)
    from_201, from_sent, early, missed = [], [], 0, 0
    for event_type, _, start, sent, answered in booked:
        times = arrivals.get((event_type.expert, start), [])
        missed += max(listening[event_type.expert] - len(times), 0)
        early += sum(at < answered for at in times)
        from_201 += [max(at - answered, 0) * 1000 for at in times]
        from_sent += [(at - sent) * 1000 for at in times]
    return from_201, from_sent, early, missed


# --------------------------------------------------------------------------- the checks


def database_checks(database_url: str, booked: list) -> list[str]:
    """Findings against the database: overlaps, 201s without their confirmed row."""
    import sqlalchemy as sa

    problems = []
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        overlaps = conn.execute(sa.text(
            "SELECT count(*) FROM booking a JOIN booking b ON a.expert_id = b.expert_id"
            " AND a.id < b.id AND a.start_at < b.end_at AND b.start_at < a.end_at"
            " WHERE a.status IN ('confirmed', 'pending') AND b.status IN ('confirmed', 'pending')"
        )).scalar_one()  # fmt: skip
        if overlaps:
            problems.append(f"{overlaps} overlapping pairs of bookings")
        uids = [uid for _, uid, *_ in booked]
        rows = set(conn.execute(
            sa.text("SELECT uid FROM booking WHERE status = 'confirmed' AND uid = ANY(:uids)"),
            {"uids": uids},
        ).scalars())  # fmt: skip
        if lost := [uid for uid in uids if uid not in rows]:
            problems.append(f"{len(lost)} bookings answered 201 without a confirmed row")
        total = conn.execute(
            sa.text("SELECT count(*) FROM booking WHERE status = 'confirmed'")
        ).scalar_one()
        if total != len(uids):
            problems.append(f"{total} confirmed rows for {len(uids)} 201s")
    engine.dispose()
    return problems


def drop_database(server_url: str, name: str) -> None:
    import sqlalchemy as sa

    from config import normalize_database_url

    engine = sa.create_engine(normalize_database_url(server_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


# --------------------------------------------------------------------------- report


def endpoint_lines(stats, duration: float) -> list[str]:
    lines = []
    for name, method in (("page", "GET"), ("slots", "GET"), ("book", "POST")):
        entry = stats.get(name, method)
        lines.append(
            f"  {method:4} {name:6} {entry.num_requests / duration:7.1f} req/s  "
            f"p50 {entry.get_response_time_percentile(0.5):6.0f} ms  "
            f"p99 {entry.get_response_time_percentile(0.99):6.0f} ms  "
            f"({entry.num_requests} requests)"
        )
    total = stats.total
    lines.append(
        f"  all         {total.num_requests / duration:7.1f} req/s  "
        f"p50 {total.get_response_time_percentile(0.5):6.0f} ms  "
        f"p99 {total.get_response_time_percentile(0.99):6.0f} ms  "
        f"({total.num_requests} requests)"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120, help="seconds of load (120)")
    parser.add_argument("--users", type=int, default=50, help="locust users (50)")
    parser.add_argument("--sockets", type=int, default=500, help="open pages (500)")
    parser.add_argument(
        "--socket-processes", type=int, default=2, help="processes the pages share (2)"
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help=f"PostgreSQL server URL; the run makes its own database, {DB_NAME}",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    args = parser.parse_args()
    if not os.access(NGINX, os.X_OK):
        print(f"{NGINX} not installed (Debian package nginx)", file=sys.stderr)
        return 2

    folder = Path(tempfile.mkdtemp(prefix="expertbook-load-"))
    database_url = fresh_postgres(args.server, DB_NAME)
    env = clean_env(
        EXPERTBOOK_ENV="production",
        DATABASE_URL=database_url,
        REDIS_URL=args.redis,
        SOCKETIO_CHANNEL=f"expertbook-load-{os.getpid()}",
        SECRET_KEY=SECRET,
        RATELIMIT_ENABLED="false",
    )
    tokens = seed(database_url, env)
    print(
        f"ExpertBook load test: {args.duration:.0f} s, {args.users} users, {args.sockets} "
        f"sockets; {os.cpu_count()} CPUs, load average {load_average()} at the start",
        flush=True,
    )
    stack = Stack(folder / "stack", env, access_log=False)
    pages: list[Pages] = []
    try:
        stack.start()
        event_types = set_up_experts(stack, tokens)
        rooms = socket_rooms(event_types, args.sockets)
        opened = time.monotonic()
        n = args.socket_processes
        shares = [rooms[i * len(rooms) // n : (i + 1) * len(rooms) // n] for i in range(n)]
        pages = [Pages(stack.url, share, folder / f"pages-{i}") for i, share in enumerate(shares)]
        joined = [p.wait_joined() for p in pages]
        print(f"nginx + 3 app processes + worker up; sockets in {n} processes: "
              f"{', '.join(joined)} in {time.monotonic() - opened:.1f} s", flush=True)  # fmt: skip

        parts = {"app processes": [a.process.pid for a in stack.apps],
                 "nginx": [stack.others[-1].process.pid], "worker": [stack.others[0].process.pid],
                 "sockets": [p.process.pid for p in pages], "locust": [os.getpid()]}  # fmt: skip
        cpu_before = {k: sum(cpu_seconds(p) for p in pids) for k, pids in parts.items()}
        began = time.monotonic()
        stats = run_crowd(stack.url, event_types, args.users, args.duration)
        wall = time.monotonic() - began
        cpu = {k: sum(cpu_seconds(p) for p in pids) - cpu_before[k] for k, pids in parts.items()}
        load_end = load_average()
        gevent.sleep(SETTLE)
        for page_set in pages:
            page_set.ask_report()
        heard = merge_reports([page_set.report() for page_set in pages])
        database_problems = database_checks(database_url, TALLY.booked)
        check = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "check-invariants"],
            cwd=BENCH.parent, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        for page_set in pages:
            page_set.stop()
        stack.stop()

    statuses = TALLY.statuses
    fives = sum(n for (_, s), n in statuses.items() if isinstance(s, int) and s >= 500)
    errors = sum(n for (_, s), n in statuses.items() if s not in (200, 201, 409))
    from_201, from_sent, early, missed = update_latencies(
        TALLY.booked, heard["heard"], heard["joined_rooms"], event_types
    )
    p99 = percentile(from_201, 99)
    print(f"\nover {wall:.0f} s through nginx (HTTPS, HTTP/1.1 kept alive) to 3 processes:")
    print("\n".join(endpoint_lines(stats, wall)))
    print(
        f"bookings made: {len(TALLY.booked)}; 409: {sum(TALLY.conflicts.values())} "
        f"{dict(TALLY.conflicts)}; errors: {errors} (5xx: {fives}, other: {errors - fives})"
    )
    print(
        f"  the popular expert (its first {POPULAR_FRONT} offered slots): "
        f"{sum(TALLY.popular.values())} attempts, {TALLY.popular[201]} booked, "
        f"{TALLY.popular[409]} 409"
    )
    if TALLY.samples:
        print("  first unexpected answers: " + "; ".join(TALLY.samples))
    print(
        f"sockets held at the end: {heard['held']} of {args.sockets} "
        f"({heard['disconnects']} disconnects seen)"
        + (f"; first failures: {heard['failures']}" if heard["failures"] else "")
    )
    print(
        f"page-to-update ({len(from_201)} socket hearings, {missed} never heard): from the 201 "
        f"p50 {median(from_201):.0f} ms, p99 {p99:.0f} ms ({early} heard before the 201 was "
        f"read, counted as 0); from the POST sent p50 {median(from_sent):.0f} ms, "
        f"p99 {percentile(from_sent, 99):.0f} ms"
    )
    print(
        f"  the socket processes' own loop lag (a 10 ms sleep's overshoot, in every arrival "
        f"time): p50 {median(heard['lags']):.0f} ms, p99 {percentile(heard['lags'], 99):.0f} ms"
    )
    print("CPU seconds over the run: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()))
    print(f"check-invariants: exit {check.returncode}: {(check.stdout + check.stderr).strip()}")
    for problem in database_problems:
        print(f"database: {problem}")
    print(f"load average at the end of the crowd: {load_end}; now {load_average()}")

    misses = []
    if fives:
        misses.append(f"{fives} answers 5xx")
    if database_problems or check.returncode != 0:
        misses.append("invariant violations")
    if heard["held"] < args.sockets:
        misses.append(f"{args.sockets - heard['held']} sockets not held")
    if missed:
        misses.append(f"{missed} slot_taken never heard")
    if not p99 < LATENCY_TARGET_MS:
        misses.append(f"page-to-update p99 {p99:.0f} ms, not under {LATENCY_TARGET_MS:.0f} ms")
    print("acceptance: " + ("met" if not misses else "missed: " + "; ".join(misses)))
    if args.keep:
        print(f"kept: database {DB_NAME}, logs in {folder}")
    else:
        drop_database(args.server, DB_NAME)
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if misses else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as stop:
        if isinstance(stop.code, str):  # the run could not be made: its reason
            print(stop.code, file=sys.stderr)
            sys.exit(2)
        raise
