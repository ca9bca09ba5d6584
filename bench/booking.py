"""Benchmark: booking throughput and slot_taken fan-out, on real server processes.

    .venv/bin/python bench/booking.py            # full run, about 1-2 minutes
    .venv/bin/python bench/booking.py --quick    # smaller run, under 40 s

One run, on a fresh PostgreSQL database (`expertbook_bench_booking` on the TEST_DATABASE_URL
server) with two `python wsgi.py` processes (eventlet) sharing one Redis message queue:

1. Booking throughput: N booking POSTs on distinct free slots from a pool of client threads,
   each with one kept-alive connection, spread over both processes. First spread over 8
   experts (the realistic case: bookings of different experts take different row locks),
   then all on one expert (its row lock serialises them). bookings/s, p50/p99, all 201?
2. The trivial endpoint, GET /api/v1/ping, same pool, same processes, same count.
   Target: booking throughput (8 experts) at least 1/3 of the trivial endpoint's.
3. Fan-out, measured from the click: on a FRESH pair of `python wsgi.py` processes (as
   after a deploy), S Socket.IO clients (websocket) split over both, all in one event
   type's room; R bookings one at a time, alternating between the processes, after ONE
   warm-up round (so the second process's first booking counts, as it would for a user);
   latency from just before each POST is sent (and from its 201's arrival) to the LAST
   socket hearing `slot_taken`, and the first-to-last spread. The first POST on each fresh
   process is also shown against later ones (the cost of cold caches and code paths).
   Target: p99 under 150 ms.
4. Baseline: the same S clients and R emits against a fresh pair of bench/bare_server.py
   processes (a bare Flask-SocketIO app with the same Redis), same measurement. Targets:
   ExpertBook's p99 within 1.5x the bare p99, its first-to-last spread (p99) within 1.5x
   the bare one's.
5. The floor of 1./2. on this stack and machine: the same loads against two
   bench/bare_server.py processes, whose booking is the least one can be (hand-written SQL
   on a raw psycopg2 connection: row lock, overlap check, insert, commit; no ORM, no slot
   engine) and whose ping is ExpertBook's. Their ratio is what 1./2. could reach at best.
6. Webhooks (bench/webhook_latency.py): bookings of an expert with a webhook, from a few
   threads; from the commit (bounded by the POST and its 201) to the delivery reaching a
   receiver in this process, delivered by the servers' own outbox workers. Target: p99
   under 2 s.
7. Mail and the outbox's cost: every booking above also writes its two mails, which the
   servers' own workers send to a real SMTP server (aiosmtpd) in this process; from commit
   (the row's created_at, the booking's `now`) to each mail's arrival, p50/p99 over every
   mail of 1.-3. and 6. Target: p99 under 2 s. Then booking throughput (8 experts) without
   the outbox (EXPERTBOOK_ENV=bench-without-outbox) and with it, each on a fresh server
   pair, taking turns five times, the order swapped each turn; the ratio is the median of
   the turns' ratios. Target: with/without at least 0.9. Each "with" turn (the web
   processes delivering nothing: the booking path alone) is followed by a turn of the bare
   pair of 5. on slots of its own; the median of those turns' ratios, target at least 0.6.
   7c.: the load of 1. on the layout docs/deploy.md sets up (web processes with
   WORKER_IN_PROCESS=false and one `flask worker`), commit -> mail p50/p99 over it.
8. Live holds (bench/_holds.py): a booking's server CPU with a hold of its own slot against
   one without (target: at most 10% more), and slot_held's fan-out to the S sockets against
   slot_taken's, measured back to back on fresh pairs (target: p99 within 1.1x).

Figures depend on the machine (and on whatever else runs on it: the load average is printed
at the start and the end); nothing here fails on a slow machine, each target prints "target
met" or "target missed", and each load phase stops at a time cap (40 s, --quick 7 s), saying
so, so the whole run stays under about 3 minutes (--quick: 40 s). Exit status 0 either way,
non-zero only when the benchmark itself could not run or a request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _delivery import MailSink, mail_latencies, paced_load  # noqa: E402
from _servers import (  # noqa: E402
    ROOT,
    AsyncHttp,
    LoadResult,
    ServerGroup,
    clean_env,
    connect_listeners,
    flask_cli,
    free_port,
    fresh_postgres,
    json_body,
    median,
    percentile,
    request_json,
    run_load,
    verdict,
)

DB_NAME = "expertbook_bench_booking"
SECRET = "bench-booking-secret"  # one key for both processes
EXPERTS = 8
DURATION = 15
# Event type ids start high in the bench database: Socket.IO rooms are "event-type:<id>", and
# Flask-SocketIO's Redis channel is fixed and shared by every database number of a Redis
# server, so low ids could collide with a test suite's servers on the same Redis.
EVENT_TYPE_ID_BASE = 900_000
DAYS = 360  # slot k: day k % DAYS from tomorrow, (k // DAYS) * 90 minutes into the day
BARE_ROOM = 1

THROUGHPUT_TARGET = 1 / 3
FANOUT_P99_TARGET_MS = 150.0
BASELINE_RATIO_TARGET = 1.5
HEAR_TIMEOUT = 5.0  # seconds a round waits for every socket
ROUND_PAUSE = 0.1  # seconds between fan-out rounds, so they never overlap
WARMUP_ROUNDS = 1  # as the held-out measure: one round, not counted
OUTBOX_RATIO_TARGET = 0.9
BARE_RATIO_TARGET = 0.6  # a booking's rate against bench/bare_server.py's
MAIL_P99_TARGET_MS = 2000.0
# 7.: (without, with) outbox runs take turns on these minutes of the days (distinct from
# every other phase's slots of the same experts).
# Five turns, not three: on these shared 2-core machines one turn's ratio swings by 0.1 either
# way, and the median of three with it.
OUTBOX_OFFSETS = ((30, 45), (195, 210), (225, 240), (270, 285), (300, 315))
DEPLOYED_OFFSET = 255  # 7c.'s minutes
WARM_DAY = 300  # 7.'s warm-up books from this day on (a full turn's slots end on day 250)


@dataclass(frozen=True)
class Size:
    bookings: int
    sockets: int
    rounds: int
    phase_cap: float  # seconds; a load phase stops there (and says so) on a slow machine
    threads: int = 32


FULL = Size(bookings=2000, sockets=500, rounds=30, phase_cap=40)
QUICK = Size(bookings=300, sockets=100, rounds=10, phase_cap=7)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------- seeding


def slot(day0: datetime, k: int) -> str:
    start = day0 + timedelta(days=k % DAYS, minutes=(k // DAYS) * 90)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


def booking_and_mail_lines(label: str, result: LoadResult, mail_ms: list[float], counts) -> int:
    """Print a booking load's line and its commit -> mail figures (7b., 7c.); 1 when not
    every booking answered 201, else 0."""
    print(result.line(label, "bookings"))
    failed = result.statuses.get(201, 0) != result.count
    if failed:
        print(f"  NOT all 201: {dict(result.statuses)}  e.g. {result.sample_error}")
    p99 = percentile(mail_ms, 99)
    print(
        f"  commit -> mail at the SMTP server ({len(mail_ms)} mails; rows {counts}): "
        f"p50 {median(mail_ms):.0f} ms, p99 {p99:.0f} ms (target p99 < "
        f"{MAIL_P99_TARGET_MS:.0f} ms): {verdict(p99 < MAIL_P99_TARGET_MS)}"
    )
    return int(failed)


def discard_pending(database_url: str) -> None:
    """Delete every pending outbox row (7.'s "with" turns: written, never to be sent)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM outbox_message WHERE status = 'pending'"))
    finally:
        engine.dispose()


def median_run(results: list[LoadResult]) -> LoadResult:
    """The run of median rate (the lower middle one of an even count)."""
    return sorted(results, key=lambda result: result.rate)[(len(results) - 1) // 2]


def seed_users(database_url: str, usernames: list[str]) -> dict[str, str]:
    """Experts with API tokens, straight into the database (the `flask users create` +
    `flask tokens create` route costs two process starts and an argon2 hash per expert).
    Returns username -> token."""
    import sqlalchemy as sa

    from expertbook import create_app
    from expertbook.accounts import create_api_token
    from expertbook.extensions import db
    from expertbook.models import User

    app = create_app("development", SQLALCHEMY_DATABASE_URI=database_url, ASYNC_MODE="threading")
    with app.app_context():
        users = [
            User(
                username=name,
                email=f"{name}@example.com",
                password_hash="!",
                timezone="UTC",
                is_expert=True,
            )
            for name in usernames
        ]
        db.session.add_all(users)
        tokens = {user.username: create_api_token(user, "bench") for user in users}
        db.session.execute(
            sa.text("SELECT setval(pg_get_serial_sequence('event_type', 'id'), :n)"),
            {"n": EVENT_TYPE_ID_BASE},
        )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return tokens


def setup_expert(server, token: str) -> int:
    """Round-the-clock hours in UTC and a 15-minute event type bookable a year ahead, via
    the API; returns the event type's id."""
    auth = {"Authorization": f"Bearer {token}"}
    week = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    status, body = request_json(
        server, "PUT", "/api/v1/availability", {"timezone": "UTC", "weekly": week}, auth
    )
    if status != 200:
        raise SystemExit(f"PUT /api/v1/availability: {status} {body}")
    fields = {"title": "Call", "slug": "call", "duration_minutes": DURATION, "max_days_ahead": 365}
    status, body = request_json(server, "POST", "/api/v1/event-types", fields, auth)
    if status != 201:
        raise SystemExit(f"POST /api/v1/event-types: {status} {body}")
    return body["id"]


def booking_requests(
    event_type_ids: list[int],
    day0: datetime,
    count: int,
    tag: str,
    path: str = "/api/v1/event-types/{}/bookings",
):
    """Request i books expert i % len(ids), that expert's slot i // len(ids): all distinct."""
    n = len(event_type_ids)
    built = [
        (
            "POST",
            path.format(event_type_ids[i % n]),
            json_body(
                {
                    "start": slot(day0, i // n),
                    "name": f"Client {i}",
                    "email": f"{tag}{i}@example.com",
                }
            ),
        )
        for i in range(count)
    ]
    return built.__getitem__


# --------------------------------------------------------------------------- fan-out


@dataclass
class Recorder:
    """Arrival times of the current round's `event` (slot_taken), matched by its start."""

    event: bytes = b"slot_taken"
    token: bytes = b""
    expected: int = 0
    times: list[float] = field(default_factory=list)
    stray: int = 0
    all_heard: asyncio.Event | None = None

    def arm(self, token: str, expected: int) -> None:
        self.token, self.expected, self.times = token.encode(), expected, []
        self.all_heard = asyncio.Event()

    def disarm(self) -> list[float]:
        times, self.token = self.times, b""
        return times

    def on_event(self, packet: bytes, received: float) -> None:
        if self.token and packet.startswith(b'42["' + self.event + b'"') and self.token in packet:
            self.times.append(received)
            if len(self.times) >= self.expected:
                self.all_heard.set()
        else:
            self.stray += 1


@dataclass
class FanOut:
    sockets: int
    last_ms: list[float] = field(default_factory=list)  # POST sent -> last socket
    last_after_201_ms: list[float] = field(default_factory=list)  # 201 read -> last socket
    first_ms: list[float] = field(default_factory=list)  # POST sent -> first socket
    response_ms: list[float] = field(default_factory=list)  # POST sent -> response read
    incomplete: int = 0  # rounds where a socket did not hear within HEAR_TIMEOUT
    failed_posts: list[str] = field(default_factory=list)
    stray: int = 0
    connect_s: float = 0.0
    # POST sent -> response read of the first POST each process answered (fresh processes).
    first_posts_ms: list[float] = field(default_factory=list)

    @property
    def spread_ms(self) -> list[float]:
        return [last - first for last, first in zip(self.last_ms, self.first_ms, strict=True)]

    def lines(self, name: str) -> list[str]:
        def fig(values):
            return f"p50 {median(values):6.1f} ms  p99 {percentile(values, 99):6.1f} ms"

        return [
            f"{name}: {self.sockets} sockets joined in {self.connect_s:.1f} s, "
            f"{len(self.last_ms)} rounds ({self.incomplete} incomplete, "
            f"{len(self.failed_posts)} failed POSTs, {self.stray} stray events)",
            f"  POST sent -> last socket    {fig(self.last_ms)}",
            f"  response read -> last socket {fig(self.last_after_201_ms)}",
            f"  POST sent -> first socket   {fig(self.first_ms)}",
            f"  first -> last socket        {fig(self.spread_ms)}",
            f"  POST sent -> response read  {fig(self.response_ms)}",
            "  first POST on each process   "
            + ", ".join(f"{ms:.1f} ms" for ms in self.first_posts_ms)
            + f" (later ones: p50 {median(self.response_ms[2:]):.1f} ms)",
        ]


async def fan_out(
    servers, sockets: int, rounds: int, join_payload: dict, make_post, event: str = "slot_taken"
) -> FanOut:
    """Connect and join `sockets` listeners over `servers`; then, one at a time, send the
    POST `make_post(r)` -> (path, payload, start[, headers]) and time every socket hearing
    `event`."""
    recorder = Recorder(event=event.encode())
    result = FanOut(sockets)
    began = time.perf_counter()
    listeners = await connect_listeners(
        [s.addr for s in servers], sockets, join_payload, recorder.on_event
    )
    result.connect_s = time.perf_counter() - began
    conns = [await AsyncHttp(*s.addr).open() for s in servers]
    try:
        await asyncio.sleep(1.0)  # let the join storm settle
        for r in range(WARMUP_ROUNDS + rounds):
            path, payload, start, *headers = make_post(r)
            recorder.arm(start, sockets)
            status, body, sent, answered = await conns[r % len(conns)].request(
                "POST", path, payload, headers=headers[0] if headers else None
            )
            if status not in (200, 201):
                result.failed_posts.append(f"{status} {body[:200]!r}")
                continue
            if r < len(conns):
                result.first_posts_ms.append((answered - sent) * 1000)
            with contextlib.suppress(TimeoutError):  # counted below as incomplete
                await asyncio.wait_for(recorder.all_heard.wait(), HEAR_TIMEOUT)
            times = recorder.disarm()
            if r >= WARMUP_ROUNDS:
                if len(times) < sockets:
                    result.incomplete += 1
                else:
                    last = max(times)
                    result.last_ms.append((last - sent) * 1000)
                    result.last_after_201_ms.append((last - answered) * 1000)
                    result.first_ms.append((min(times) - sent) * 1000)
                    result.response_ms.append((answered - sent) * 1000)
            await asyncio.sleep(ROUND_PAUSE)
        result.stray = recorder.stray
    finally:
        for conn in conns:
            conn.close()
        for listener in listeners:
            listener.close()
        await asyncio.sleep(0.2)  # let the closes go out
    return result


# --------------------------------------------------------------------------- main


def webhook_phase(servers, token: str, event_type_id: int, day0: datetime, size: Size):
    """6. From a booking's commit to its webhook at a receiver (bench/webhook_latency.py)."""
    import webhook_latency

    count = max(size.rounds * 10, 100)
    return webhook_latency.measure(
        servers, token, event_type_id, lambda i: slot(day0, i), count, threads=8
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 bookings, 100 sockets, 10 rounds")
    parser.add_argument(
        "--server",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help=f"PostgreSQL server URL; the benchmark makes its own database, {DB_NAME}",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--database",
        default=DB_NAME,
        help="the database to (re)create; give another name to run beside another run",
    )
    args = parser.parse_args()
    # Each figure as it comes, also into a file or a pipe (a full run takes minutes).
    sys.stdout.reconfigure(line_buffering=True)
    size = QUICK if args.quick else FULL
    run_started = time.monotonic()

    workdir = Path(tempfile.mkdtemp(prefix="expertbook-bench-booking-"))
    database_url = fresh_postgres(args.server, args.database)
    # A channel of this run's own: two runs on one Redis would hear each other's events.
    channel = f"expertbook-bench-{os.getpid()}"
    sink = MailSink(free_port()).start()
    env = clean_env(
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(sink.port),
        DATABASE_URL=database_url,
        REDIS_URL=args.redis,
        SOCKETIO_CHANNEL=channel,
        SECRET_KEY=SECRET,
        ACCESS_LOG="false",
        RATELIMIT_ENABLED="false",
        ALLOW_PRIVATE_HOSTS="true",  # 6.'s webhook receiver listens on 127.0.0.1
    )
    flask_cli(env, "db", "upgrade")
    experts = [f"expert{i}" for i in range(EXPERTS)]
    bare_experts = [f"bare{i}" for i in range(EXPERTS)]
    tokens = seed_users(
        database_url, [*experts, *bare_experts, "solo", "fan", "warm", "hook", "holdfan"]
    )
    day0 = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)

    print(
        f"ExpertBook booking benchmark ({'quick' if args.quick else 'full'}): "
        f"{os.cpu_count()} CPUs, load average {load_average()}, PostgreSQL, Redis {args.redis}"
    )
    print(f"server logs in {workdir}")
    group = ServerGroup(workdir)
    failures = 0
    try:
        # Hours and event types through the API of a process of their own, so that the
        # pair below starts fresh (3. measures its first bookings).
        [setup] = group.start("wsgi.py", 1, env)
        ids = {name: setup_expert(setup, tokens[name]) for name in tokens}
        group.stop()
        servers = group.start("wsgi.py", 2, env)
        print(
            f"2 x `python wsgi.py` on ports {', '.join(str(s.port) for s in servers)}; "
            f"{size.threads} client threads, one kept-alive connection each"
        )

        # 3. Fan-out through ExpertBook, first, on the fresh pair; and 4., through a fresh
        # pair of bare servers, right after (they stay up, idle, for 5.).
        fan_id = ids["fan"]

        def book(r: int):
            start = slot(day0, r)
            payload = {"start": start, "name": f"Fan {r}", "email": f"fan{r}@example.com"}
            return f"/api/v1/event-types/{fan_id}/bookings", payload, start

        app_fan = asyncio.run(
            fan_out(servers, size.sockets, size.rounds, {"event_type_id": fan_id}, book)
        )
        bare_group = ServerGroup(workdir)
        bare_env = clean_env(
            REDIS_URL=args.redis, DATABASE_URL=database_url, SOCKETIO_CHANNEL=f"{channel}-bare"
        )
        bare_servers = bare_group.start("bench/bare_server.py", 2, bare_env)

        def emit(r: int):
            start = slot(day0, r)
            end = (datetime.fromisoformat(start) + timedelta(minutes=DURATION)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            return "/emit", {"event_type_id": BARE_ROOM, "start": start, "end": end}, start

        bare_fan = asyncio.run(
            fan_out(bare_servers, size.sockets, size.rounds, {"event_type_id": BARE_ROOM}, emit)
        )

        # Warm-up: every connection and pooled database connection, not reported.
        warmup = size.threads * 2
        ping_path = lambda i: ("GET", "/api/v1/ping", None)  # noqa: E731
        run_load(servers, ping_path, warmup, size.threads, deadline=10)
        warm = booking_requests([ids["warm"]], day0, warmup, "warm")
        run_load(servers, warm, warmup, size.threads, deadline=10)

        n, cap = size.bookings, size.phase_cap
        ping = run_load(servers, ping_path, n, size.threads, deadline=cap)
        healthz = run_load(
            servers, lambda i: ("GET", "/healthz", None), n, size.threads, deadline=cap
        )
        multi = run_load(
            servers,
            booking_requests([ids[e] for e in experts], day0, n, "m"),
            n,
            size.threads,
            deadline=cap,
        )
        single = run_load(
            servers,
            booking_requests([ids["solo"]], day0, n, "s"),
            n,
            size.threads,
            deadline=cap,
        )

        print(
            f"\n1./2. {n} requests each (a phase stops at {cap:.0f} s), "
            f"{size.threads} threads over 2 processes"
        )
        print(multi.line(f"booking, {EXPERTS} experts", "bookings"))
        print(single.line("booking, 1 expert", "bookings"))
        print(ping.line("GET /api/v1/ping", "requests"))
        print(healthz.line("GET /healthz (SELECT 1)", "requests"))
        for result, want in ((multi, 201), (single, 201), (ping, 200), (healthz, 200)):
            done = result.statuses.get(want, 0)
            if done != result.count:
                failures += 1
                print(f"  NOT all {want}: {dict(result.statuses)}  e.g. {result.sample_error}")
            elif result.statuses.get("skipped"):
                print(f"  (time cap: {done} of {n} sent, all {want}; the rate is over those)")
        if multi.statuses.get(201) == multi.count and single.statuses.get(201) == single.count:
            print(f"  all {multi.count + single.count} bookings answered 201")
        ratio = multi.rate / ping.rate
        print(
            f"booking/trivial throughput: {EXPERTS} experts {ratio:.2f}, 1 expert "
            f"{single.rate / ping.rate:.2f} (target >= {THROUGHPUT_TARGET:.2f} for "
            f"{EXPERTS} experts): {verdict(ratio >= THROUGHPUT_TARGET)}"
        )
        print(f"  booking/healthz throughput: {multi.rate / healthz.rate:.2f}")

        def per(result: LoadResult, seconds: float) -> float:
            return 1000 * seconds / max(result.count, 1)

        print(
            f"  CPU per request, server processes: booking {per(multi, multi.server_cpu):.2f} ms,"
            f" ping {per(ping, ping.server_cpu):.2f} ms (ratio "
            f"{per(ping, ping.server_cpu) / per(multi, multi.server_cpu):.2f}); client: "
            f"booking {per(multi, multi.client_cpu):.2f} ms, "
            f"ping {per(ping, ping.client_cpu):.2f} ms"
        )

        hooks = webhook_phase(servers, tokens["hook"], ids["hook"], day0, size)
        mail_ms, mail_counts = mail_latencies(database_url, sink)
        group.stop()

        # 7. Booking throughput without and with the outbox, each on a fresh server pair,
        # on slots of their own (minutes OUTBOX_OFFSETS of the same days), taking turns
        # five times (the ratio is the median of the turns' own: one pair each swings with
        # whatever else the machine does); then once with the servers delivering too.
        # The turns alternate which goes first (without, with; with, without; ...): the
        # rate drifts down as the run fills the database, and a fixed order would charge
        # that drift to whichever always goes second.
        # Each "with" turn is followed by a turn of the bare pair (up since 4.), on its
        # experts' slots at the same minutes: the booking path's ratio to the bare booking
        # is the median of those turns' ratios, each taken side by side, not of one bare run
        # minutes later, while other work on the machine comes and goes.
        bare_path = "/book/{}"
        bare_ping_path = lambda i: ("GET", "/ping", None)  # noqa: E731
        run_load(bare_servers, bare_ping_path, warmup, size.threads, deadline=10)
        # A year after the slots ExpertBook's warm-up took (the bare booking has no horizon).
        warm = booking_requests([ids["warm"]], day0 + timedelta(days=DAYS), warmup, "bw", bare_path)
        run_load(bare_servers, warm, warmup, size.threads, deadline=10)
        bare_turns: list[LoadResult] = []
        outbox_runs: dict[str, list[LoadResult]] = {"without": [], "with": []}
        turns = []
        for turn, (without_at, with_at) in enumerate(OUTBOX_OFFSETS):
            pair = [
                ("without", without_at, {"EXPERTBOOK_ENV": "bench-without-outbox"}),
                ("with", with_at, {"WORKER_IN_PROCESS": "false"}),
            ]
            turns += pair[::-1] if turn % 2 else pair
        for label, offset, extra in [*turns, ("with+delivery", 60, {})]:
            pair = group.start("wsgi.py", 2, {**env, **extra})
            run_load(pair, ping_path, warmup, size.threads, deadline=10)
            # Warmed by bookings as the bare pair is (5.): the pool's database connections
            # opened and their statements prepared, which a fresh pair's first bookings
            # would otherwise pay inside the measure (a `--quick` turn is 300 bookings).
            # Bookings of the measured experts too, on days past the measure's: a process
            # reads an expert's hours once and keeps them (schedule_cache.cached_hours), as
            # a long-running one has; read inside a `--quick` turn they cost it a tenth
            # more CPU a booking. The bare booking keeps nothing from one to the next.
            warm = booking_requests(
                [ids["warm"], *(ids[e] for e in experts)],
                day0 + timedelta(days=WARM_DAY, minutes=offset),
                warmup * 2,
                f"w{offset}-",
            )
            run_load(pair, warm, warmup * 2, size.threads, deadline=10)
            requests = booking_requests(
                [ids[e] for e in experts], day0 + timedelta(minutes=offset), n, f"o{offset}-"
            )
            outbox_runs.setdefault(label, []).append(
                run_load(pair, requests, n, size.threads, deadline=cap)
            )
            if label == "with+delivery":
                mail_latencies(database_url, sink)  # its mails go out before it stops
            group.stop()
            if label == "with":
                # Its servers deliver nothing, and the rows it wrote were the measure: left
                # pending, later pairs' workers would deliver them while being measured.
                discard_pending(database_url)
                bare_requests = booking_requests(
                    [ids[e] for e in bare_experts], day0 + timedelta(minutes=offset), n,
                    f"bo{offset}-", bare_path,
                )  # fmt: skip
                bare_turns.append(
                    run_load(bare_servers, bare_requests, n, size.threads, deadline=cap)
                )
        # 7b. Delivery at a steady half of the "without" rate (open loop), on a fresh pair:
        # bookings of the 8 experts, then of the webhook expert, each at that rate.
        import webhook_latency

        steady_rate = median_run(outbox_runs["without"]).rate / 2
        steady_day = day0 + timedelta(minutes=75)
        pair = group.start("wsgi.py", 2, env)
        run_load(pair, ping_path, warmup, size.threads, deadline=10)
        since = time.time()
        requests = booking_requests([ids[e] for e in experts], steady_day, n, "st")
        steady = paced_load(pair, requests, n, steady_rate, threads=size.threads)
        steady_mail = mail_latencies(database_url, sink, since=since)
        steady_hooks = webhook_latency.measure(
            pair, tokens["hook"], ids["hook"], lambda i: slot(steady_day, i), hooks.count,
            threads=size.threads, rate=steady_rate,
        )  # fmt: skip
        mail_latencies(database_url, sink)
        group.stop()
        # 7c. The layout docs/deploy.md sets up: web processes that deliver nothing
        # (WORKER_IN_PROCESS=false) and one `flask worker` beside them; the load of 1.
        deployed = group.start("wsgi.py", 2, {**env, "WORKER_IN_PROCESS": "false"})
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            run_load(deployed, ping_path, warmup, size.threads, deadline=10)
            since = time.time()
            requests = booking_requests(
                [ids[e] for e in experts], day0 + timedelta(minutes=DEPLOYED_OFFSET), n, "dp"
            )
            deployed_run = run_load(deployed, requests, n, size.threads, deadline=cap)
            deployed_mail = mail_latencies(database_url, sink, since=since)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            group.stop()
        # 8. Live holds (bench/_holds.py): a booking's cost with its own hold, and slot_held's
        # fan-out, each on a fresh pair.
        import _holds

        hold_cost_lines = _holds.hold_cost(
            group, env, database_url, [ids[e] for e in experts], day0, size, slot, json_body
        )
        hold_fan_lines = _holds.hold_fan_out(group, env, fan_out, size, ids["holdfan"], day0, slot)

        # 5. The same loads against the bare servers (warmed before 7.).
        bare_ping = run_load(bare_servers, bare_ping_path, n, size.threads, deadline=cap)
        bare_multi = run_load(
            bare_servers,
            booking_requests([ids[e] for e in bare_experts], day0, n, "b", bare_path),
            n,
            size.threads,
            deadline=cap,
        )
    finally:
        group.stop()
        with contextlib.suppress(NameError):
            bare_group.stop()

    print(
        f"\n3./4. fan-out of slot_taken, {size.rounds} rounds one at a time "
        f"(+{WARMUP_ROUNDS} warm-up), sockets split over 2 fresh processes"
    )
    for line in app_fan.lines("ExpertBook (booking POST)") + bare_fan.lines("bare (POST /emit)"):
        print(line)
    for fan in (app_fan, bare_fan):
        if fan.incomplete or fan.failed_posts:
            failures += 1
            print(f"  problems: {fan.failed_posts[:2]} {fan.incomplete} incomplete rounds")
    app_p99, bare_p99 = percentile(app_fan.last_ms, 99), percentile(bare_fan.last_ms, 99)
    print(
        f"ExpertBook last-socket p99 {app_p99:.1f} ms (target < {FANOUT_P99_TARGET_MS:.0f} ms): "
        f"{verdict(app_p99 < FANOUT_P99_TARGET_MS)}"
    )
    print(
        f"ExpertBook p99 / bare p99 = {app_p99 / bare_p99:.2f} "
        f"(target <= {BASELINE_RATIO_TARGET}): "
        f"{verdict(app_p99 / bare_p99 <= BASELINE_RATIO_TARGET)}"
    )
    app_spread, bare_spread = percentile(app_fan.spread_ms, 99), percentile(bare_fan.spread_ms, 99)
    print(
        f"first -> last socket p99 {app_spread:.1f} ms, bare {bare_spread:.1f} ms: "
        f"{app_spread / bare_spread:.2f}x (target <= {BASELINE_RATIO_TARGET}): "
        f"{verdict(app_spread / bare_spread <= BASELINE_RATIO_TARGET)}"
    )
    print(
        "  (before the emit: POST sent -> first socket p50 "
        f"{median(app_fan.first_ms):.1f} vs {median(bare_fan.first_ms):.1f} ms bare; the fan-out "
        f"itself, first -> last: {median(app_fan.spread_ms):.1f} vs "
        f"{median(bare_fan.spread_ms):.1f} ms)"
    )
    print(
        f"\n5. the floor: {n} requests each against 2 bench/bare_server.py processes "
        "(a booking in hand-written SQL, no ORM, no slot engine)"
    )
    print(bare_multi.line(f"bare booking, {EXPERTS} experts", "bookings"))
    print(bare_ping.line("bare GET /ping", "requests"))
    for result, want in ((bare_multi, 201), (bare_ping, 200)):
        if result.statuses.get(want, 0) != result.count:
            failures += 1
            print(f"  NOT all {want}: {dict(result.statuses)}  e.g. {result.sample_error}")
    print(
        f"bare booking/ping throughput: {bare_multi.rate / bare_ping.rate:.2f}; ExpertBook's "
        f"booking is {multi.rate / bare_multi.rate:.2f} of the bare one "
        f"(server CPU {per(multi, multi.server_cpu):.2f} vs "
        f"{per(bare_multi, bare_multi.server_cpu):.2f} ms per booking)"
    )
    print(f"\n6. webhooks: {hooks.count} bookings from 8 threads, each with a webhook")
    for line in hooks.lines():
        print(line)
    if hooks.failed_posts or hooks.missing:
        failures += 1
        print(f"  problems: {hooks.failed_posts[:2]} {hooks.missing} webhooks missing")
    sink.stop()
    print(f"\n7. mail and the outbox's cost ({n} bookings each, {EXPERTS} experts)")
    mail_p99 = percentile(mail_ms, 99)
    print(
        f"commit -> mail at the SMTP server, over 1.-3. and 6. ({len(mail_ms)} mails; rows "
        f"{mail_counts}): p50 {median(mail_ms):.0f} ms, p99 {mail_p99:.0f} ms (target p99 < "
        f"{MAIL_P99_TARGET_MS:.0f} ms): {verdict(mail_p99 < MAIL_P99_TARGET_MS)}"
    )
    if mail_counts.get("pending") or mail_counts.get("failed"):
        failures += 1
        print(f"  mails left undelivered: {mail_counts}")
    for label, results in outbox_runs.items():
        for result in results:
            print(result.line(f"booking, {label} outbox", "bookings"))
            if result.statuses.get(201, 0) != result.count:
                failures += 1
                print(f"  NOT all 201: {dict(result.statuses)}  e.g. {result.sample_error}")
    without_run, with_run = median_run(outbox_runs["without"]), median_run(outbox_runs["with"])
    # Each ratio is the median of the turns' own: a turn's two runs are side by side, so
    # the machine's drift between turns (a bare run at 789/s, one a minute later at 478/s)
    # cancels; the ratio of the two medians, which may come from different turns, is shown
    # too.
    outbox_turns = [
        w.rate / wo.rate for wo, w in zip(outbox_runs["without"], outbox_runs["with"], strict=True)
    ]
    outbox_ratio = median(outbox_turns)
    print(
        f"with/without outbox throughput, the median of {len(OUTBOX_OFFSETS)} turns' ratios: "
        f"{outbox_ratio:.2f} (turn by turn {', '.join(f'{r:.2f}' for r in outbox_turns)}; "
        f"the medians' ratio {with_run.rate / without_run.rate:.2f}; target >= "
        f"{OUTBOX_RATIO_TARGET}): {verdict(outbox_ratio >= OUTBOX_RATIO_TARGET)}"
    )
    for result in bare_turns:
        print(result.line("bare booking, beside", "bookings"))
    bare_run = median_run(bare_turns)
    path_turns = [w.rate / b.rate for w, b in zip(outbox_runs["with"], bare_turns, strict=True)]
    path_ratio = median(path_turns)
    print(
        f"  the booking path alone (outbox rows written, the web processes delivering "
        f"nothing) is {path_ratio:.2f} of the bare booking's rate, the median of "
        f"{len(bare_turns)} turns side by side (turn by turn "
        f"{', '.join(f'{r:.2f}' for r in path_turns)}; the medians' ratio "
        f"{with_run.rate / bare_run.rate:.2f}; server CPU "
        f"{per(with_run, with_run.server_cpu):.2f} vs {per(bare_run, bare_run.server_cpu):.2f} "
        f"ms per booking; target >= {BARE_RATIO_TARGET}): "
        f"{verdict(path_ratio >= BARE_RATIO_TARGET)}"
    )
    delivered_ratio = outbox_runs["with+delivery"][0].rate / without_run.rate
    print(
        f"  with the servers also rendering and sending the mails: {delivered_ratio:.2f} "
        '(the same CPUs do both; the rows "with" wrote are discarded after each turn)'
    )
    print(
        f"7b. with delivery at a steady {steady_rate:.0f} bookings/s (half the rate without), "
        "open loop:"
    )
    failures += booking_and_mail_lines("booking, steady", steady, *steady_mail)
    for line in steady_hooks.lines():
        print(f"  {line}")
    print("7c. the deployed layout (docs/deploy.md): 2 web processes and one `flask worker`")
    failures += booking_and_mail_lines("booking, web + worker", deployed_run, *deployed_mail)
    print(f"\n8a. live holds: a booking's cost with its own hold ({n} bookings, {EXPERTS} experts)")
    for line in hold_cost_lines:
        print(line)
    print(f"8b. fan-out of slot_held and slot_taken, {size.rounds} rounds each, fresh processes")
    for line in hold_fan_lines:
        print(line)
    failures += sum(
        "NOT all" in line or "problems:" in line for line in hold_cost_lines + hold_fan_lines
    )
    print(
        f"\ntotal {time.monotonic() - run_started:.0f} s, load average now {load_average()} "
        f"(other work on the machine skews every figure)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
