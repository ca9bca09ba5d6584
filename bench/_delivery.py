"""Delivery figures for the booking bench: a real SMTP sink (aiosmtpd) that notes when each
mail arrives, and commit -> arrival latencies read against the outbox rows.

Each mail's Message-ID is `<outbox row uid@host>`; the row's created_at is the booking's
`now`, taken just before its commit, so arrival - created_at is (a hair more than) the time
from commit to the mail reaching the mail server.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

from _servers import LoadResult


class MailSink:
    """An SMTP server on a free port, in a process of its own, that accepts everything and
    notes when each mail arrives. (In this process its every reply waited for the GIL
    behind the load's client threads: 4 replies a mail, so the mails' latency and the
    servers' delivery rate were the load generator's.)"""

    def __init__(self, port: int):
        self.port = port
        self._log = Path(tempfile.mkstemp(prefix="expertbook-bench-mail-", suffix=".log")[1])
        self._process: subprocess.Popen | None = None

    def start(self, deadline: float = 20) -> MailSink:
        # Its stdin is a pipe from this process: it ends when this process does, even
        # killed (an orphaned sink would hold the terminal's pipes open).
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(self.port), str(self._log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + deadline
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            if self._process.poll() is not None or time.monotonic() > end:
                raise SystemExit(f"the SMTP sink did not listen on {self.port}")
            time.sleep(0.05)

    @property
    def arrivals(self) -> dict[str, float]:
        """Message-ID uid part -> wall-clock arrival (the first, for a mail sent twice)."""
        found: dict[str, float] = {}
        for line in self._log.read_text().splitlines():
            uid, _, arrived = line.partition(" ")
            if uid and arrived:
                found.setdefault(uid, float(arrived))
        return found

    def stop(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait(timeout=10)
        self._log.unlink(missing_ok=True)


class _Recorder:
    """The sink process's handler: one line "uid arrival" per mail, to `log`."""

    def __init__(self, log):
        self.log = log

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        arrived = time.time()
        uid = ""
        for line in envelope.content.split(b"\r\n"):
            if not line:
                break  # end of the headers
            if line.lower().startswith(b"message-id:"):
                uid = line.split(b":", 1)[1].strip().strip(b"<>").split(b"@")[0].decode()
        if uid:
            self.log.write(f"{uid} {arrived}\n")
            self.log.flush()
        return "250 OK"


def _serve(port: int, log_path: str) -> None:
    from aiosmtpd.controller import Controller

    with open(log_path, "a") as log:
        controller = Controller(_Recorder(log), hostname="127.0.0.1", port=port)
        controller.start()
        with contextlib.suppress(ValueError, OSError):
            sys.stdin.buffer.read()  # until this process's parent ends or stops it
        controller.stop()


def mail_latencies(
    database_url: str, sink: MailSink, drain: float = 60, since: float = 0.0
) -> tuple[list[float], dict]:
    """Wait (up to `drain` s) until no mail row is pending, then return the commit ->
    arrival latencies in ms of every sent mail row (written at wall-clock `since` or
    later), and the rows' status counts."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    query = sa.text("SELECT status, count(*) FROM outbox_message WHERE kind = 'mail' GROUP BY 1")
    try:
        end = time.monotonic() + drain
        while True:
            with engine.connect() as conn:
                counts = dict(conn.execute(query).all())
            if not counts.get("pending") or time.monotonic() > end:
                break
            time.sleep(0.2)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT uid, created_at FROM outbox_message WHERE kind = 'mail'")
            ).all()
    finally:
        engine.dispose()
    latencies = []
    for uid, created in rows:
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        if created.timestamp() < since:
            continue
        arrived = sink.arrivals.get(uid)
        if arrived is not None:
            latencies.append((arrived - created.timestamp()) * 1000)
    counts["arrived"] = len(latencies)
    return latencies, counts


def paced_load(
    servers: list,
    build: Callable[[int], tuple[str, str, bytes | None]],
    count: int,
    rate: float,
    threads: int = 16,
    timeout: float = 30,
) -> LoadResult:
    """Send requests 0..count-1 at a steady `rate` a second (open loop: request i leaves at
    start + i / rate, or as soon after as a thread is free), from `threads` threads with one
    kept-alive connection each, spread round-robin over `servers`."""
    next_index = itertools.count()
    lock = threading.Lock()
    results: list[tuple[int | str, float] | None] = [None] * count
    errors: list[str] = []
    began = time.perf_counter() + 0.2

    def worker(w: int) -> None:
        host, port = servers[w % len(servers)].addr
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        while True:
            with lock:
                i = next(next_index)
            if i >= count:
                break
            time.sleep(max(began + i / rate - time.perf_counter(), 0))
            method, path, body = build(i)
            sent = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=_JSON)
                response = conn.getresponse()
                data = response.read()
                status: int | str = response.status
                if response.status >= 400 and len(errors) < 3:
                    errors.append(f"{method} {path}: {response.status} {data[:300]!r}")
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                errors.append(f"{method} {path}: {error!r}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            results[i] = (status, (time.perf_counter() - sent) * 1000)
        conn.close()

    cpu_before = [s.cpu_seconds() for s in servers]
    client_before = time.process_time()
    pool = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall = time.perf_counter() - began
    statuses: Counter = Counter(item[0] if item else "skipped" for item in results)
    return LoadResult(
        count=sum(1 for item in results if item),
        wall=wall,
        statuses=statuses,
        latencies_ms=[item[1] for item in results if item],
        server_cpu=sum(s.cpu_seconds() - b for s, b in zip(servers, cpu_before, strict=True)),
        client_cpu=time.process_time() - client_before,
        sample_error=errors[0] if errors else "",
    )


_JSON = {"Content-Type": "application/json"}


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2])
