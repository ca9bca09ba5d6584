"""Delivery with real server processes (`python wsgi.py`, eventlet), a real SMTP server and
`flask worker`: nothing is lost when a server dies after the commit or the mail server is
away, and a slow mail server never holds a page up."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

from aiosmtpd.controller import Controller

from tests.e2e.conftest import ROOT, free_port, future_slot, server_env, setup_coach
from tests.mail_inbox import Inbox, smtp_server


def book(server, site, hour: int, days: int = 2):
    body = {"start": future_slot(days, hour), "name": "Ann", "email": f"ann{hour}@example.com"}
    began = time.monotonic()
    status, answer = server.request(
        "POST", f"/api/v1/event-types/{site.event_type_id}/bookings", body
    )
    assert status == 201, answer
    return answer, time.monotonic() - began


def mail_env(inbox) -> dict[str, str]:
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(inbox.port)}


def test_a_server_killed_after_the_201_loses_no_mail(sqlite_site, start_server, tmp_path):
    """The server commits the booking and its mails, answers 201 and dies (kill -9) before
    any delivery (its worker is off); a `flask worker` started later sends both mails."""
    with smtp_server() as inbox:
        server = start_server(
            sqlite_site.database_url, WORKER_IN_PROCESS="false", **mail_env(inbox)
        )
        setup_coach(sqlite_site, server)
        answer, _ = book(server, sqlite_site, 10)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        assert inbox.messages == []
        env = server_env(sqlite_site.database_url, **mail_env(inbox), BASE_URL=server.url)
        log = tmp_path / "worker.log"
        with log.open("w") as output:
            worker = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
                cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            guest = inbox.wait_for("ann10@example.com", timeout=20)
            inbox.wait_for("coach@example.com", timeout=20)
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=15)
        assert code == 0, log.read_text()
        assert "outbox worker stopped" in log.read_text()
        assert answer["manage_url"] in guest[0].get_body(("plain",)).get_content()
        assert len(inbox.messages) == 2


def test_without_a_mail_server_each_mail_is_one_line_in_the_servers_log(sqlite_site, start_server):
    """What a newcomer sees after `make run`: a booking's two mails as log lines."""
    server = start_server(sqlite_site.database_url)
    setup_coach(sqlite_site, server)
    book(server, sqlite_site, 11)
    deadline = time.monotonic() + 10
    while server.log.read_text().count("mail to=") < 2:
        assert time.monotonic() < deadline, server.log.read_text()[-3000:]
        time.sleep(0.1)
    lines = [line for line in server.log.read_text().splitlines() if "mail to=" in line]
    assert any("mail to=ann11@example.com subject=Booked: " in line for line in lines)
    assert any("mail to=coach@example.com subject=Booked: " in line for line in lines)


def test_every_mail_arrives_after_the_mail_server_comes_back(pg_site, start_server):
    """The mail server is down while five bookings are made: each answers at once, and
    every mail arrives (once each) after the server comes back on the same port."""
    with smtp_server() as first:
        port = first.port
    server = start_server(
        pg_site.database_url,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(port),
        OUTBOX_RETRY_FIRST_SECONDS="0.5",
        OUTBOX_RETRY_LONGEST_SECONDS="1",
    )
    setup_coach(pg_site, server)
    took = [book(server, pg_site, hour)[1] for hour in range(9, 14)]
    assert max(took) < 2.0  # bookings never wait on the mail server
    time.sleep(3)  # several failed attempts each
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        for hour in range(9, 14):
            inbox.wait_for(f"ann{hour}@example.com", timeout=20)
        inbox.wait_for("coach@example.com", count=5, timeout=20)
        time.sleep(1.5)  # a duplicate would arrive by now
    finally:
        controller.stop()
    ids = [m["Message-ID"] for m in inbox.messages]
    assert len(ids) == 10 and len(set(ids)) == 10


class SlowInbox(Inbox):
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(3)
        return await super().handle_DATA(server, session, envelope)


def test_a_slow_mail_server_never_holds_the_server_up(sqlite_site, start_server):
    """Each mail takes the SMTP server 3 s to accept; meanwhile /healthz keeps answering at
    once (the delivery loop yields on every network call)."""
    inbox = SlowInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        server = start_server(
            sqlite_site.database_url, MAIL_SERVER="127.0.0.1", MAIL_PORT=str(port)
        )
        setup_coach(sqlite_site, server)
        for hour in (9, 10, 11):
            assert book(server, sqlite_site, hour)[1] < 2.0
        worst = 0.0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # the mails are being accepted, slowly
            began = time.monotonic()
            assert server.request("GET", "/healthz", timeout=5)[0] == 200
            worst = max(worst, time.monotonic() - began)
            time.sleep(0.05)
        assert worst < 0.5, worst
        inbox.wait_for("coach@example.com", count=3, timeout=20)
    finally:
        controller.stop()
