"""Delivery figures for the booking bench: a real SMTP sink (aiosmtpd) that notes when each
mail arrives, and commit -> arrival latencies read against the outbox rows.

Each mail's Message-ID is `<outbox row uid@host>`; the row's created_at is the booking's
`now`, taken just before its commit, so arrival - created_at is (a hair more than) the time
from commit to the mail reaching the mail server.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC

from aiosmtpd.controller import Controller


class MailSink:
    """An SMTP server on a free port that accepts everything and notes arrival times."""

    def __init__(self, port: int):
        self.port = port
        self.arrivals: dict[str, float] = {}  # Message-ID uid part -> wall-clock arrival
        self.count = 0
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        arrived = time.time()
        uid = ""
        for line in envelope.content.split(b"\r\n"):
            if not line:
                break  # end of the headers
            if line.lower().startswith(b"message-id:"):
                uid = line.split(b":", 1)[1].strip().strip(b"<>").split(b"@")[0].decode()
        with self._lock:
            self.count += 1
            if uid:
                self.arrivals.setdefault(uid, arrived)
        return "250 OK"

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


def mail_latencies(
    database_url: str, sink: MailSink, drain: float = 60
) -> tuple[list[float], dict]:
    """Wait (up to `drain` s) until no mail row is pending, then return the commit ->
    arrival latencies in ms of every sent mail row, and the rows' status counts."""
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
        arrived = sink.arrivals.get(uid)
        if arrived is not None:
            created = created if created.tzinfo else created.replace(tzinfo=UTC)
            latencies.append((arrived - created.timestamp()) * 1000)
    counts["arrived"] = len(latencies)
    return latencies, counts
