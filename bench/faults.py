"""Fault test (issue 17): three app processes under a booking crowd and open pages, while one
process is killed (kill -9, then started again), Redis is restarted and PostgreSQL is
restarted, in turn. After each fault and at the end it checks, from the database:

- no two confirmed bookings of the expert overlap;
- every 201 is a row (same uid, start and event type, cancelled exactly when we cancelled);
- no row without a 201, except a request in flight at the kill: its retry with the same
  Idempotency-Key answered 201 with the row's uid (the retries are re-sent at the end too);
- every open page's view of the slots equals the database's truth within 5 s of the fault
  ending (or of the last booking or cancellation answered after it, when later), and each
  process's slots API answers that same truth;
- outside the fault windows no 5xx, no connection error, no socket `error` or disconnect;
  inside, only 503 with a Retry-After of at most 10 s, and connection errors (and
  disconnects) from the killed process;
- `flask check-invariants` exits 0.

It prints a summary (requests, bookings, 409s, 503s, connection errors, convergence per
fault, every violation) and exits 1 on any violation. Everything runs on a PostgreSQL and a
Redis of its own, on free ports (tests/faults/services.py); the machine's are not touched.

    python bench/faults.py [--duration 120] [--clients 20] [--sockets 100]

`--duration` is the seconds of plain load: a quarter before each fault and after the last.
tests/faults/test_fault_bench.py runs `run()` with a smaller crowd.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client as http_client
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _crowd import Crowd, Operation, Site, http, iso_z  # noqa: E402
from _servers import (  # noqa: E402
    HOST,
    ROOT,
    clean_env,
    flask_cli,
    free_port,
    http_get_status,
    median,
)

from tests.faults.services import PostgresInstance, RedisInstance, stop_process  # noqa: E402

PROCESSES = 3
CONVERGE_WITHIN = 5.0  # seconds after a fault ends
GRACE = 1.0  # a fault's window closes this long after it ends
MAX_RETRY_AFTER = 10  # seconds a 503 may ask a client to wait
VICTIM = 1  # the process killed
# 4xx answers that are part of the game: racing bookers (409), the per-address limit (429),
# a cancellation retried after its first try went through (409, checked per operation).
EXPECTED = {("book", 409), ("book", 429), ("cancel", 409)}


@dataclass
class Options:
    duration: float = 120
    clients: int = 20
    sockets: int = 100
    days: int = 4  # the window of days booked and shown
    outage: float = 3.0  # seconds Redis and PostgreSQL stay down
    seed: int = 17
    log: bool = True  # print progress
    keep_logs: bool = False  # keep the processes' logs even when all went well


# --------------------------------------------------------------------------- processes


@dataclass
class App:
    """`python wsgi.py` on a port of its own, started again on the same port after a kill."""

    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    def start(self, deadline: float = 90) -> App:
        env = {**self.env, "PORT": str(self.port), "BASE_URL": f"http://127.0.0.1:{self.port}"}
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                [sys.executable, "wsgi.py"], cwd=ROOT, env=env, stdout=output, stderr=output
            )
        end = time.monotonic() + deadline
        while time.monotonic() < end and self.process.poll() is None:
            with suppress(OSError, http_client.HTTPException):
                if http_get_status(HOST, self.port, "/healthz") == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"wsgi.py on {self.port} did not start:\n{self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@dataclass
class Fault:
    name: str
    started: float = 0.0  # time.monotonic()
    ended: float = 0.0
    wall: float = 0.0  # time.time() when it started (rows carry wall-clock times)
    port: int | None = None  # the killed process's
    reference: float = 0.0  # later of `ended` and the last write answered after it
    convergence: list[float | None] = field(default_factory=list)  # per page, seconds

    def covers(self, sent: float, answered: float) -> bool:
        return sent <= self.ended + GRACE and answered >= self.started


@dataclass
class Report:
    options: Options
    faults: list[Fault] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def violation(self, text: str) -> None:
        self.violations.append(text)


# --------------------------------------------------------------------------- the database


class Database:
    """Read-only look at the run's database, one short connection per question."""

    def __init__(self, url: str, coach: str):
        import sqlalchemy as sa

        from config import normalize_database_url

        self.sa = sa
        self.engine = sa.create_engine(normalize_database_url(url), poolclass=sa.pool.NullPool)
        with self.engine.connect() as conn:
            self.coach_id = conn.scalar(
                sa.text('SELECT id FROM "user" WHERE username = :u'), {"u": coach}
            )

    def bookings(self) -> list:
        query = self.sa.text(
            "SELECT b.uid, b.event_type_id, b.start_at, b.end_at, b.status, b.created_at,"
            " k.key FROM booking b LEFT JOIN idempotency_key k ON k.booking_id = b.id"
            " WHERE b.expert_id = :coach ORDER BY b.start_at, b.id"
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query, {"coach": self.coach_id}))

    def close(self) -> None:
        self.engine.dispose()


def truth(site: Site, rows) -> dict[int, set[str]]:
    """The starts each event type offers in the window, from the confirmed bookings: the
    coach works round the clock in UTC, without buffers or notice."""
    held = [(r.start_at, r.end_at) for r in rows if r.status in ("confirmed", "pending")]
    offered = {}
    for event_type_id, minutes in site.event_types.items():
        length = timedelta(minutes=minutes)
        starts = set()
        for k in range(site.grid_size(event_type_id)):
            start = site.first_day + k * length
            if not any(s < start + length and start < e for s, e in held):
                starts.add(iso_z(start))
        offered[event_type_id] = starts
    return offered


def check_rows(report: Report, crowd: Crowd, rows, final: bool) -> None:
    """Overlaps, 201s against rows and rows against 201s (see the module's docstring)."""
    held = [r for r in rows if r.status == "confirmed"]
    for before, after in zip(held, held[1:], strict=False):
        if after.start_at < before.end_at:
            report.violation(f"overlap: {before.uid} and {after.uid} at {after.start_at}")
    by_uid = {r.uid: r for r in rows}
    books = {op.key: op for op in crowd.operations if op.kind == "book"}
    cancelled = {
        op.key
        for op in crowd.operations
        if op.kind == "cancel" and (op.final == 200 or (op.final == 409 and op.network_errors))
    }
    for op in books.values():
        if op.final != 201:
            continue
        row = by_uid.get(op.uid)
        if row is None:
            report.violation(f"a 201 without a row: uid {op.uid} (key {op.key})")
        elif (row.key, iso_z(row.start_at), row.event_type_id) != (
            op.key,
            op.start,
            op.event_type_id,
        ):
            report.violation(f"row {op.uid} is not what its 201 said: {row}")
        elif (row.status == "cancelled") != (op.uid in cancelled):
            report.violation(
                f"row {op.uid} is {row.status}, cancelled by us: {op.uid in cancelled}"
            )
    for row in rows:
        op = books.get(row.key)
        if op is not None and op.final == 201 and op.uid == row.uid:
            continue
        if op is not None and op.final is None and not final:
            continue  # still being retried: settled at the end
        report.violation(f"a row without a 201: {row.uid} (key {row.key}, op {op and op.final})")


# --------------------------------------------------------------------------- the run


class Run:
    def __init__(self, options: Options):
        self.options = options
        self.report = Report(options)
        self.folder = Path(tempfile.mkdtemp(prefix="expertbook-faults-"))
        self.postgres = PostgresInstance()
        self.redis = RedisInstance()
        self.apps: list[App] = []
        self.env: dict[str, str] = {}
        self.site: Site | None = None
        self.crowd: Crowd | None = None
        self.db: Database | None = None

    def say(self, text: str) -> None:
        if self.options.log:
            print(text, flush=True)

    # -- set-up
    def set_up(self) -> None:
        self.postgres.start()
        self.redis.start()
        url = self.postgres.create_database("expertbook_faults")
        self.env = clean_env(
            DATABASE_URL=url,
            REDIS_URL=self.redis.url,
            SECRET_KEY="faults-bench-secret",
            HOST="127.0.0.1",
            RATELIMIT_ENABLED="true",
            CALENDAR_SYNC_IN_PROCESS="false",
            SOCKETIO_CHANNEL=f"expertbook-faults-{os.getpid()}",
        )
        flask_cli(self.env, "db", "upgrade")
        flask_cli(self.env, "users", "create", "coach", "coach@example.com", "--expert",
                  "--password", "coach-password")  # fmt: skip
        token = flask_cli(self.env, "tokens", "create", "coach").strip().splitlines()[-1]
        self.apps = [
            App(port, self.env, self.folder / f"app-{n}.log")
            for n, port in enumerate(free_port() for _ in range(PROCESSES))
        ]
        threads = [threading.Thread(target=app.start) for app in self.apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for app in self.apps:
            if app.process is None or app.process.poll() is not None:
                raise RuntimeError(f"wsgi.py did not start:\n{app.log.read_text()[-2000:]}")
        first_day = (datetime.now(UTC) + timedelta(days=2)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.site = Site([a.port for a in self.apps], token, {}, first_day, self.options.days)
        self.db = Database(url, "coach")

    async def make_event_types(self) -> None:
        auth = {"Authorization": f"Bearer {self.site.token}"}
        port = self.site.ports[0]
        week = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        answer = await http(port, "PUT", "/api/v1/availability",
                            {"timezone": "UTC", "weekly": week}, auth)  # fmt: skip
        assert answer.status == 200, answer
        for slug, minutes in (("sync", 30), ("deep", 60)):
            body = {"title": slug.title(), "slug": slug, "duration_minutes": minutes}
            answer = await http(port, "POST", "/api/v1/event-types", body, auth)
            assert answer.status == 201, answer
            self.site.event_types[answer.body["id"]] = minutes

    def tear_down(self) -> None:
        for app in self.apps:
            app.stop()
        if self.db is not None:
            self.db.close()
        self.redis.close()
        self.postgres.close()

    # -- faults (blocking: run in a thread while the crowd goes on)
    def kill_and_restart(self, fault: Fault) -> None:
        """kill -9 the victim while a booking POST is on its way to it (if one comes
        within 10 s), then start it again on the same port."""
        victim = self.apps[VICTIM]
        fault.port = victim.port
        end = time.monotonic() + 10
        while self.crowd.in_flight["book", victim.port] == 0 and time.monotonic() < end:
            time.sleep(0.002)
        fault.started, fault.wall = time.monotonic(), time.time()
        victim.kill()
        victim.start()

    def restart_redis(self, fault: Fault) -> None:
        self.redis.stop()
        time.sleep(self.options.outage)
        self.redis.start()

    def restart_postgres(self, fault: Fault) -> None:
        self.postgres.stop("fast")
        time.sleep(self.options.outage)
        self.postgres.start()

    async def inflict(self, name: str, action) -> Fault:
        fault = Fault(name)
        self.say(f"fault: {name}")
        fault.started, fault.wall = time.monotonic(), time.time()
        await asyncio.to_thread(action, fault)
        fault.ended = time.monotonic()
        self.report.faults.append(fault)
        return fault

    # -- checks
    async def settle_and_check(self, fault: Fault | None, final: bool = False) -> None:
        """Pause the bookers, wait for their operations to finish, then check the pages'
        convergence, the rows and `flask check-invariants`."""
        crowd, report = self.crowd, self.report
        await crowd.pause()
        paused = time.monotonic()
        writes = [
            a.answered
            for a in crowd.attempts
            if a.what in ("book", "cancel") and a.status in (200, 201)
        ]
        reference = max([fault.ended if fault else paused - 1, *writes[-1:]])
        if fault is not None:
            fault.reference = reference
        rows = await asyncio.to_thread(self.db.bookings)
        expected = truth(self.site, rows)
        for n, app in enumerate(self.apps):
            for event_type_id, starts in expected.items():
                answer = await http(app.port, "GET", self.site.slots_path(event_type_id))
                got = {s["start"] for s in answer.body["slots"]} if answer.status == 200 else None
                if got != starts:
                    report.violation(
                        f"process {n}: slots of event type {event_type_id} differ from the"
                        f" database ({answer.status})"
                    )
        times = await self.converge(expected, reference)
        if fault is not None:
            fault.convergence = times
        label = fault.name if fault else "end"
        for page, seconds in zip(crowd.pages, times, strict=True):
            if seconds is None or seconds > CONVERGE_WITHIN:
                missing = len(expected[page.event_type_id] - (page.view or set()))
                extra = len((page.view or set()) - expected[page.event_type_id])
                report.violation(
                    f"{label}: page {page.index} (event type {page.event_type_id}, process"
                    f" {page.server}, live {page.live}) did not converge within"
                    f" {CONVERGE_WITHIN:.0f} s: {missing} offered times missing, {extra} extra"
                )
        check_rows(report, crowd, rows, final)
        await self.check_invariants(label)
        if not final:
            crowd.resume()

    async def converge(self, expected: dict[int, set[str]], reference: float) -> list:
        """Per page, seconds from `reference` until its view equalled `expected` (None if
        it did not within CONVERGE_WITHIN + 5 s)."""
        pages = self.crowd.pages
        times: list[float | None] = [None] * len(pages)
        end = reference + CONVERGE_WITHIN + 5
        while True:
            for n, page in enumerate(pages):
                if times[n] is None and page.view == expected[page.event_type_id]:
                    times[n] = max(0.0, page.changed_at - reference)
            if all(t is not None for t in times) or time.monotonic() > end:
                return times
            await asyncio.sleep(0.05)

    async def check_invariants(self, label: str) -> None:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "flask", "--app", "wsgi", "check-invariants"],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        self.report.figures.setdefault("check-invariants", []).append(result.returncode)
        if result.returncode != 0:
            text = (result.stdout + result.stderr).strip()
            self.report.violation(
                f"{label}: flask check-invariants exited {result.returncode}: {text}"
            )

    async def replay(self) -> None:
        """Send again, with the same key and body, every booking that met a connection error
        or was left unresolved, and a sample of the others: a 201 must answer with the same
        uid; where an unresolved one left a row, it must answer with that row's uid."""
        crowd, report = self.crowd, self.report
        rows = {r.key: r for r in await asyncio.to_thread(self.db.bookings)}
        books = [op for op in crowd.operations if op.kind == "book"]
        chosen = [op for op in books if op.network_errors or op.final is None]
        others = [op for op in books if op.final == 201 and not op.network_errors]
        chosen += crowd.random.sample(others, min(15, len(others)))
        replayed = Counter()
        for n, op in enumerate(chosen):
            source = f"127.0.3.{n // 40 + 1}"  # within the per-address limit
            path = f"/api/v1/event-types/{op.event_type_id}/bookings"
            answer = await http(crowd.site.ports[n % PROCESSES], "POST", path, op.body,
                                {"Idempotency-Key": op.key}, source)  # fmt: skip
            uid = answer.body.get("uid") if isinstance(answer.body, dict) else None
            row = rows.get(op.key)
            if op.final == 201 and (answer.status, uid) != (201, op.uid):
                report.violation(f"replay of {op.key}: {answer.status} {uid}, first {op.uid}")
            elif op.final is None and row is not None and (answer.status, uid) != (201, row.uid):
                report.violation(f"unresolved {op.key} has row {row.uid}; retry: {answer.status}")
            elif op.final is None and answer.status == 201:
                op.final, op.uid = 201, uid  # the booking it was after, made by this retry
            replayed[answer.status] += 1
        report.figures["replayed"] = dict(replayed)

    # -- the whole run
    async def main(self) -> Report:
        options, report = self.options, self.report
        await asyncio.to_thread(self.set_up)
        await self.make_event_types()
        self.say(f"3 processes on ports {self.site.ports}; opening {options.sockets} pages")
        self.crowd = Crowd(self.site, options.clients, options.sockets, options.seed)
        try:
            await self.crowd.open_pages()
            self.crowd.start_bookers()
            calm = options.duration / 4
            for name, action in (
                ("kill -9 one app process", self.kill_and_restart),
                ("restart Redis", self.restart_redis),
                ("restart PostgreSQL", self.restart_postgres),
            ):
                await asyncio.sleep(calm)
                fault = await self.inflict(name, action)
                await self.settle_and_check(fault)
            await asyncio.sleep(calm)
            await self.crowd.pause()
            await self.replay()
            await self.settle_and_check(None, final=True)
        finally:
            await self.crowd.close()
        classify(report, self.crowd)
        summarize(report, self.crowd, self)
        return report


def classify(report: Report, crowd: Crowd) -> None:
    """Every attempt and socket note against the fault windows."""
    faults = report.faults
    found: Counter = Counter()
    for attempt in crowd.attempts:
        inside = [f for f in faults if f.covers(attempt.sent, attempt.answered)]
        status = attempt.status
        if isinstance(status, str):
            if not any(f.port == attempt.port for f in inside):
                found[f"{attempt.what}: {status} outside a kill"] += 1
        elif status >= 500:
            if not inside:
                found[f"{attempt.what}: {status} outside the fault windows: {attempt.detail}"] += 1
            elif status != 503 or not attempt.retry_after or not is_short(attempt.retry_after):
                found[
                    f"{attempt.what}: {status} (Retry-After {attempt.retry_after}) in"
                    f" {inside[0].name}: {attempt.detail}"
                ] += 1
        elif status >= 400 and (attempt.what, status) not in EXPECTED:
            found[f"{attempt.what}: unexpected {status}"] += 1
    for op in crowd.operations:
        if op.kind == "cancel" and op.final == 409 and not op.network_errors:
            found["cancel: 409 on a first try (the booking was not confirmed)"] += 1
        if op.kind == "book" and op.final == 409 and op.code != "slot_unavailable":
            found[f"book: 409 {op.code}"] += 1
    for page in crowd.pages:
        for note in page.notes:
            inside = [f for f in faults if f.covers(note.at, note.at)]
            if note.what == "disconnect":
                if not any(f.port == note.port for f in inside):
                    found["page: disconnected outside a kill"] += 1
            elif note.what != "error:unavailable" or not inside:
                found[f"page: {note.what} {'inside' if inside else 'outside'} a fault"] += 1
    for text, count in found.items():
        report.violation(f"{text} (x{count})")
    for crash in crowd.crashes:
        report.violation(f"the crowd itself failed: {crash}")


def is_short(retry_after: str) -> bool:
    """A 503's pause is a few seconds: the database is back in seconds, not a minute."""
    return retry_after.isdigit() and 0 < int(retry_after) <= MAX_RETRY_AFTER


def summarize(report: Report, crowd: Crowd, run: Run) -> None:
    options, lines = report.options, report.lines
    statuses = Counter(a.status for a in crowd.attempts)
    by_kind = Counter(a.what for a in crowd.attempts)
    books = [op for op in crowd.operations if op.kind == "book"]
    cancels = [op for op in crowd.operations if op.kind == "cancel"]
    made = sum(op.final == 201 for op in books)
    figures = report.figures
    figures.update(
        requests=len(crowd.attempts),
        bookings=made,
        conflicts=sum(op.final == 409 for op in books),
        cancelled=sum(op.final == 200 for op in cancels),
        unresolved=sum(op.final is None for op in crowd.operations),
        status_503=statuses[503],
        status_429=statuses[429],
        connection_errors=sum(n for s, n in statuses.items() if isinstance(s, str)),
    )
    lines.append(
        f"fault test: {PROCESSES} processes, {options.clients} bookers, {options.sockets} pages,"
        f" {options.duration:.0f} s of load, outages of {options.outage:.0f} s"
    )
    lines.append(
        f"requests {len(crowd.attempts)} ({', '.join(f'{k} {v}' for k, v in by_kind.items())});"
        f" statuses {dict(sorted(statuses.items(), key=lambda kv: str(kv[0])))}"
    )
    lines.append(
        f"bookings {made} made, {figures['conflicts']} answered 409 (racing),"
        f" {figures['cancelled']} cancelled; 503s {statuses[503]}, 429s {statuses[429]},"
        f" connection errors {figures['connection_errors']}, unresolved {figures['unresolved']}"
    )
    for fault in report.faults:
        times = [t for t in fault.convergence if t is not None]
        inside = [a for a in crowd.attempts if fault.covers(a.sent, a.answered)]
        counts = Counter(a.status for a in inside)
        lines.append(
            f"{fault.name}: down {fault.ended - fault.started:.1f} s;"
            f" in its window {len(inside)} requests, 503 {counts[503]},"
            f" connection errors {sum(n for s, n in counts.items() if isinstance(s, str))};"
            f" pages converged {len(times)}/{len(fault.convergence)},"
            f" p50 {median(times):.2f} s, max {max(times, default=float('nan')):.2f} s"
            f" after {fault.reference - fault.ended:.1f} s of settling"
        )
        if fault.port is not None:
            lines.append("  " + in_flight_line(fault, books, run))
    disconnects = sum(n.what == "disconnect" for p in crowd.pages for n in p.notes)
    events = Counter()
    for page in crowd.pages:
        events.update(page.events)
    lines.append(f"pages: {disconnects} disconnects, events heard {dict(events)}")
    lines.append(f"flask check-invariants exit codes: {figures.get('check-invariants')}")
    lines.append(f"replayed with the same key: {figures.get('replayed')}")
    logged = Counter()
    for app in run.apps:
        logged.update(re.findall(r"\] ERROR in (\w+)", app.log.read_text()))
    lines.append(f"ERROR lines in the processes' logs, by module: {dict(logged) or 'none'}")
    if report.violations:
        lines.append(f"VIOLATIONS ({len(report.violations)}):")
        lines += [f"  - {v}" for v in report.violations[:60]]
    else:
        lines.append("no violation")
    if report.violations or options.keep_logs:
        dump(crowd, report, run.folder)
        lines.append(f"logs and the crowd's ledger kept in {run.folder}")


def dump(crowd: Crowd, report: Report, folder: Path) -> None:
    """The crowd's ledger (times relative to the first request), for a post-mortem."""
    zero = min((a.sent for a in crowd.attempts), default=0.0)
    with (folder / "ledger.txt").open("w") as out:
        for fault in report.faults:
            start, end = fault.started - zero, fault.ended - zero
            out.write(f"fault {fault.name}: {start:.3f} to {end:.3f}\n")
        for op in crowd.operations:
            tries = " ".join(
                f"{a.port}@{a.sent - zero:.3f}+{a.answered - a.sent:.3f}={a.status}"
                for a in op.attempts
            )
            out.write(f"{op.kind} {op.key} {op.start} final={op.final} uid={op.uid}: {tries}\n")


def in_flight_line(fault: Fault, books: list[Operation], run: Run) -> str:
    """The bookings in flight at the kill, and what their retries answered."""
    hit = [
        op
        for op in books
        if any(
            isinstance(a.status, str) and a.port == fault.port and a.sent <= fault.started
            for a in op.attempts
        )
    ]
    rows = {r.key: r for r in run.db.bookings()}
    committed = [
        op for op in hit if op.key in rows and rows[op.key].created_at.timestamp() < fault.wall
    ]
    same = sum(op.final == 201 and rows[op.key].uid == op.uid for op in committed)
    return (
        f"bookings in flight at the kill: {len(hit)}, committed before it {len(committed)}"
        f" (their retries answered 201 with the same uid: {same}),"
        f" finals {dict(Counter(op.final for op in hit))}"
    )


def run(options: Options) -> Report:
    """The whole fault test; the report holds the figures, the summary and the violations."""
    faults = Run(options)
    try:
        return asyncio.run(faults.main())
    finally:
        faults.tear_down()
        if not (faults.report.violations or options.keep_logs):
            import shutil

            shutil.rmtree(faults.folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120, help="seconds of plain load")
    parser.add_argument("--clients", type=int, default=20, help="booking clients")
    parser.add_argument("--sockets", type=int, default=100, help="open booking pages")
    parser.add_argument("--days", type=int, default=4, help="days booked and shown")
    parser.add_argument("--outage", type=float, default=3, help="seconds Redis/PostgreSQL are down")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    options = Options(args.duration, args.clients, args.sockets, args.days, args.outage)
    options.keep_logs = args.keep_logs
    report = run(options)
    print("\n".join(report.lines))
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
