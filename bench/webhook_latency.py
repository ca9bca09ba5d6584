"""Webhook latency, a phase of bench/booking.py: from a booking's commit to its
`booking.created` webhook reaching a receiver, delivered by the server processes' own
outbox workers.

A real HTTP receiver in this process (threads) records when each delivery arrives, keyed
by the booking's uid; the expert's webhook points at it (the servers run with
ALLOW_PRIVATE_HOSTS=true: it listens on 127.0.0.1). Bookings go out from a few client
threads over both processes. The commit lies between the POST being sent and its 201
arriving, so two figures bound the latency: from the 201 (the commit was a little earlier)
and from the POST (the commit was later).

Target: p99 under 2 s.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _servers import HOST, json_body, median, percentile, request_json, verdict

P99_TARGET_S = 2.0
HEAR_TIMEOUT = 30.0  # seconds to wait for the last delivery


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__((HOST, 0), _Handler)
        self.arrived: dict[str, float] = {}
        self.signed = 0
        self.lock = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        at = time.monotonic()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        uid = json.loads(body).get("booking", {}).get("uid")
        with self.server.lock:
            if uid and uid not in self.server.arrived:
                self.server.arrived[uid] = at
            if self.headers.get("X-ExpertBook-Signature", "").startswith("sha256="):
                self.server.signed += 1
            self.server.lock.notify_all()

    def log_message(self, format, *args):  # noqa: A002
        pass


@dataclass
class WebhookLatency:
    count: int
    from_201_ms: list[float] = field(default_factory=list)
    from_post_ms: list[float] = field(default_factory=list)
    missing: int = 0
    failed_posts: list[str] = field(default_factory=list)
    signed: int = 0

    def lines(self) -> list[str]:
        if not self.from_201_ms:
            return ["webhook latency: no delivery arrived"]
        p99 = percentile(self.from_201_ms, 99) / 1000
        return [
            f"{len(self.from_201_ms)} of {self.count} webhooks arrived "
            f"({self.signed} signed), {self.missing} missing after {HEAR_TIMEOUT:.0f} s",
            f"  201 -> receiver: p50 {median(self.from_201_ms):.0f} ms, "
            f"p99 {percentile(self.from_201_ms, 99):.0f} ms, max {max(self.from_201_ms):.0f} ms",
            f"  POST -> receiver: p50 {median(self.from_post_ms):.0f} ms, "
            f"p99 {percentile(self.from_post_ms, 99):.0f} ms",
            f"webhook p99 (commit -> receiver, from the 201) {p99:.2f} s "
            f"(target < {P99_TARGET_S:.0f} s): {verdict(p99 < P99_TARGET_S and not self.missing)}",
        ]


def measure(
    servers: list,
    token: str,
    event_type_id: int,
    slot: Callable[[int], str],
    count: int,
    threads: int = 8,
    rate: float | None = None,
) -> WebhookLatency:
    """Add a webhook for the expert owning `event_type_id` (whose bearer `token` is given),
    make `count` bookings of it (booking i at `slot(i)`; as fast as `threads` can, or at a
    steady `rate` a second), time each one's webhook, and remove the webhook."""
    receiver = _Receiver()
    serving = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    result = WebhookLatency(count)
    try:
        auth = {"Authorization": f"Bearer {token}"}
        status, body = request_json(
            servers[0],
            "POST",
            "/api/v1/webhooks",
            {"url": receiver.url, "events": ["booking.created"]},
            auth,
        )
        if status != 201:
            raise SystemExit(f"POST /api/v1/webhooks: {status} {body}")
        webhook_id = body["id"]
        sent: dict[str, tuple[float, float]] = {}  # uid -> (POST sent, 201 arrived)
        began = time.monotonic()

        def book(i: int) -> None:
            if rate:
                time.sleep(max(began + i / rate - time.monotonic(), 0))
            server = servers[i % len(servers)]
            payload = {"start": slot(i), "name": f"Hook {i}", "email": f"hook{i}@example.com"}
            conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
            try:
                posted = time.monotonic()
                conn.request(
                    "POST",
                    f"/api/v1/event-types/{event_type_id}/bookings",
                    body=json_body(payload),
                    headers={"Content-Type": "application/json"},
                )
                response = conn.getresponse()
                raw = response.read()
                answered = time.monotonic()
            finally:
                conn.close()
            if response.status != 201:
                result.failed_posts.append(f"{response.status} {raw[:200]!r}")
                return
            sent[json.loads(raw)["uid"]] = (posted, answered)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(book, range(count)))
        with receiver.lock:
            receiver.lock.wait_for(lambda: sent.keys() <= receiver.arrived.keys(), HEAR_TIMEOUT)
            arrived = dict(receiver.arrived)
            result.signed = receiver.signed
        for uid, (posted, answered) in sent.items():
            if uid not in arrived:
                result.missing += 1
                continue
            result.from_201_ms.append(1000 * max(arrived[uid] - answered, 0.0))
            result.from_post_ms.append(1000 * (arrived[uid] - posted))
        request_json(servers[0], "DELETE", f"/api/v1/webhooks/{webhook_id}", None, auth)
    finally:
        receiver.shutdown()
        serving.join()
        receiver.server_close()
    return result
