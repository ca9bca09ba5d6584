"""Notification mails through a real local SMTP server (aiosmtpd), delivered by the outbox."""

import socket
import threading

import pytest
from aiosmtpd.controller import Controller

from expertbook import booking_mail, mail
from expertbook.extensions import db
from expertbook.models import utcnow
from expertbook.outbox import DeliveryError, enqueue
from expertbook.outbox.worker import load_handlers, run_pass
from tests.booking_fixtures import day_ahead
from tests.e2e.conftest import free_port
from tests.mail_inbox import Inbox


def calendar_part(message):
    return next(p for p in message.walk() if p.get_content_type() == "text/calendar")


def deliver(app, booking, kind, inbox=None):
    """Write `kind`'s mail rows for `booking` and run a worker pass over them (after the
    booking's own mails, which are then dropped from `inbox`)."""
    load_handlers()
    run_pass(app)
    if inbox is not None:
        inbox.messages.clear()
    enqueue(booking_mail.rows_for(booking, kind, now=utcnow()))
    db.session.commit()
    db.session.info.clear()  # the pass below delivers them, not the next request
    return run_pass(app)


@pytest.mark.parametrize("kind, method", [("booked", "REQUEST"), ("rescheduled", "REQUEST"),
                                          ("cancelled", "CANCEL")])  # fmt: skip
def test_both_parties_get_the_invite(app, inbox, make_booking, coach, kind, method):
    booking, _ = make_booking(day_ahead(2, 10))
    assert deliver(app, booking, kind, inbox) == 2
    assert sorted(m["To"] for m in inbox.messages) == sorted([booking.email, coach.email])
    for message in inbox.messages:
        part = calendar_part(message)
        assert part.get_param("method") == method
        body = part.get_content()
        assert f"METHOD:{method}" in body and f"UID:{booking.uid}@testserver" in body
        assert message["Subject"].startswith(kind.capitalize())
        assert message["Message-ID"].endswith("@testserver>")
    assert len({m["Message-ID"] for m in inbox.messages}) == 2


@pytest.mark.parametrize("name", ["Ann", 'Zoë, "Q" O\'Neil; 🎉 ' + "é" * 40, "Ann Lee " * 12])
def test_a_mail_is_written_as_compat32_writes_it(app, make_booking, name):
    """Headers short and plain enough are written without the email.header machinery:
    the bytes sent are the very bytes compat32's own folding gives."""
    import io
    from email.generator import BytesGenerator
    from email.policy import compat32

    booking, token = make_booking(day_ahead(2, 10), name=name)
    with app.test_request_context():
        message = booking_mail.booking_mail(
            booking, "booked", "client", manage_url=f"http://x/{token}", uid="u" * 32
        )

    def written(policy=None) -> bytes:
        out = io.BytesIO()
        BytesGenerator(out, policy=policy).flatten(message, linesep="\r\n")
        return out.getvalue()

    assert written() == written(compat32.clone(linesep="\r\n"))
    assert b"\r\nTo: ann@example.com\r\n" in written()


def test_without_a_mail_server_each_mail_is_one_log_line(
    app, make_booking, coach, caplog, monkeypatch
):
    import logging

    # A migration test's logging.fileConfig (alembic) disables the loggers that exist then.
    monkeypatch.setattr(logging.getLogger("expertbook.mail"), "disabled", False)
    booking, _ = make_booking(day_ahead(2, 10))
    run_pass(app)  # the booking's own mails
    with caplog.at_level("INFO", logger="expertbook.mail"):
        deliver(app, booking, "cancelled")
    subject = booking_mail.subject_of(booking, "cancelled")
    lines = [r.getMessage() for r in caplog.records if subject in r.getMessage()]
    assert sorted(lines) == sorted(
        [f"mail to={booking.email} subject={subject}", f"mail to={coach.email} subject={subject}"]
    )


def test_booking_through_the_api_sends_the_mails(inbox, client, sync):
    start = day_ahead(3, 9).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"start": start, "name": "Ann", "email": "ann@example.com"}
    response = client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body)
    assert response.status_code == 201
    assert {m["To"] for m in inbox.messages} == {"ann@example.com", "coach@example.com"}
    text = next(p for p in inbox.messages[0].walk() if p.get_content_type() == "text/plain")
    assert response.json["video_url"] in text.get_content()


def test_a_broken_mail_server_does_not_fail_the_booking(app, client, sync):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())  # nobody listens
    start = day_ahead(3, 9).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"start": start, "name": "Ann", "email": "ann@example.com"}
    response = client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body)
    assert response.status_code == 201


def test_the_guest_mail_carries_the_manage_link(inbox, client, sync):
    start = day_ahead(3, 11).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"start": start, "name": "Guest", "email": "guest@example.com"}
    answer = client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body).json
    guest = next(m for m in inbox.messages if m["To"] == "guest@example.com")
    text = next(p for p in guest.walk() if p.get_content_type() == "text/plain").get_content()
    assert answer["manage_url"] in text
    assert answer["manage_url"] in invite_description(guest)  # the invite links back too
    expert = next(m for m in inbox.messages if m["To"] == "coach@example.com")
    expert_text = next(p for p in expert.walk() if p.get_content_type() == "text/plain")
    assert "token=" not in expert_text.get_content()
    assert "token=" not in invite_description(expert)


def invite_description(message) -> str:
    import icalendar

    (event,) = icalendar.Calendar.from_ical(calendar_part(message).get_content()).walk("VEVENT")
    return str(event["DESCRIPTION"])


def plain_mail(app, n: int):
    with app.test_request_context():
        return mail.mime_mail(
            subject=f"Note {n}",
            to=f"reader{n}@example.com",
            message_id=mail.message_id(f"note{n}"),
            text=f"Note number {n}.",
            html=f"<p>Note number {n}.</p>",
        )


class Counting(Inbox):
    """An inbox that notes which connection brought each mail, and can answer 421 (and
    hang up) to one of them."""

    def __init__(self, refuse: int | None = None):
        super().__init__()
        self.peers: list = []
        self.refuse = refuse

    async def handle_DATA(self, server, session, envelope):
        self.peers.append(session.peer)
        if len(self.peers) == self.refuse:
            return "421 closing, too many mails on one connection"
        return await super().handle_DATA(server, session, envelope)


def counting_server(app, refuse=None):
    handler = Counting(refuse)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port)
    return handler, controller


def test_a_batch_goes_over_one_connection(app):
    handler, controller = counting_server(app)
    try:
        outcomes = mail.send_emails([plain_mail(app, n) for n in range(5)])
    finally:
        controller.stop()
    assert outcomes == [250] * 5
    assert len(set(handler.peers)) == 1
    assert [m["Subject"] for m in handler.messages] == [f"Note {n}" for n in range(5)]


def test_a_connection_the_server_ends_is_opened_again_for_the_rest(app):
    handler, controller = counting_server(app, refuse=3)
    try:
        outcomes = mail.send_emails([plain_mail(app, n) for n in range(5)])
    finally:
        controller.stop()
    assert outcomes[:2] == [250, 250] and outcomes[3:] == [250, 250]
    assert isinstance(outcomes[2], DeliveryError) and not outcomes[2].permanent
    assert outcomes[2].status_code == 421
    first, second = handler.peers[0], handler.peers[3]
    assert handler.peers == [first, first, first, second, second] and first != second


def test_the_next_batch_goes_over_the_connection_the_last_one_left_open(app):
    handler, controller = counting_server(app)
    try:
        assert mail.send_emails([plain_mail(app, 0)]) == [250]
        assert mail.send_emails([plain_mail(app, 1), plain_mail(app, 2)]) == [250, 250]
    finally:
        controller.stop()
    assert len(handler.peers) == 3 and len(set(handler.peers)) == 1


def test_a_kept_connection_the_server_dropped_is_opened_anew(app):
    """The server goes away between two batches (an idle timeout, a restart on the same
    port): the next batch notices on its first mail and sends everything on a new one."""
    handler, controller = counting_server(app)
    port = controller.port
    try:
        assert mail.send_emails([plain_mail(app, 0)]) == [250]
    finally:
        controller.stop()
    restarted = Counting()
    controller = Controller(restarted, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert mail.send_emails([plain_mail(app, 1), plain_mail(app, 2)]) == [250, 250]
    finally:
        controller.stop()
    assert [m["Subject"] for m in restarted.messages] == ["Note 1", "Note 2"]
    assert len(set(restarted.peers)) == 1


def test_a_connection_idle_too_long_is_not_used_again(app, monkeypatch):
    handler, controller = counting_server(app)
    try:
        assert mail.send_emails([plain_mail(app, 0)]) == [250]
        monkeypatch.setattr(mail, "IDLE_SECONDS", 0.0)
        assert mail.send_emails([plain_mail(app, 1)]) == [250]
    finally:
        controller.stop()
    assert len(set(handler.peers)) == 2


def test_another_server_s_connection_is_not_used(app):
    first, first_controller = counting_server(app)
    second, second_controller = counting_server(app)
    try:
        app.config["MAIL_PORT"] = first_controller.port
        assert mail.send_emails([plain_mail(app, 0)]) == [250]
        app.config["MAIL_PORT"] = second_controller.port
        assert mail.send_emails([plain_mail(app, 1)]) == [250]
    finally:
        first_controller.stop()
        second_controller.stop()
    assert [m["Subject"] for m in second.messages] == ["Note 1"]


def test_a_server_that_cannot_be_reached_costs_one_attempt_a_batch(app):
    """A server that hangs up at once: the first mail's attempt fails, the others fail with
    it without trying (a hanging server would otherwise cost a timeout per mail)."""
    accepted = []
    listener = socket.create_server(("127.0.0.1", 0))

    def hang_up():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=listener.getsockname()[1])
    try:
        outcomes = mail.send_emails([plain_mail(app, n) for n in range(4)])
    finally:
        listener.close()
    assert all(isinstance(o, DeliveryError) and not o.permanent for o in outcomes)
    assert "could not be reached" in outcomes[0].message
    assert len(accepted) == 1


def test_a_mail_refused_for_good_does_not_stop_the_others(app):
    class Refusing(Inbox):
        async def handle_RCPT(self, server, session, envelope, address, options):
            if address.startswith("reader1@"):
                return "550 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    handler = Refusing()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port)
    try:
        outcomes = mail.send_emails([plain_mail(app, n) for n in range(3)])
    finally:
        controller.stop()
    assert outcomes[0] == outcomes[2] == 250
    assert outcomes[1].permanent and outcomes[1].status_code == 550
    assert [m["To"] for m in handler.messages] == ["reader0@example.com", "reader2@example.com"]


def test_a_worker_pass_sends_a_batch_of_booking_mails_over_few_connections(app, make_booking):
    handler, controller = counting_server(app)
    try:
        bookings = [make_booking(day_ahead(2 + n, 10))[0] for n in range(12)]
        load_handlers()
        assert run_pass(app) == 24
    finally:
        controller.stop()
    assert len(handler.messages) == 24
    # 24 mails in chunks of 8 or more: at most 3 connections, not one a mail.
    assert len(set(handler.peers)) <= 3
    sent = {m["To"] for m in handler.messages}
    assert sent == {b.email for b in bookings} | {b.expert.email for b in bookings}


def test_a_chunk_begins_no_mail_in_the_last_third_of_its_claim(app, make_booking, monkeypatch):
    """Each mail takes 100 s of a 300 s claim: two go, the rest are released untried (no
    attempt counted) before another worker could reclaim and send them twice."""
    from datetime import timedelta

    import sqlalchemy as sa

    from expertbook.outbox import OutboxMessage
    from expertbook.outbox.recording import Policy

    for n in range(3):
        make_booking(day_ahead(2 + n, 10))
    load_handlers()
    now = [utcnow()]
    sent = []

    def slow_send(self, message):
        sent.append(message["To"])
        now[0] += timedelta(seconds=100)
        return 250

    monkeypatch.setattr(mail.SmtpConnection, "send", slow_send)
    app.config.update(MAIL_SERVER="127.0.0.1", OUTBOX_LEASE_SECONDS=300)
    policy = Policy.from_config(app.config)

    def rows():
        db.session.rollback()
        query = sa.select(OutboxMessage).where(OutboxMessage.kind == OutboxMessage.MAIL)
        return list(db.session.scalars(query))

    assert run_pass(app, clock=lambda: now[0], policy=policy) == 6
    assert len(sent) == 2
    released = [row for row in rows() if row.status == OutboxMessage.PENDING]
    assert len(released) == 4
    assert all(row.claimed_until is None and row.attempts == 0 for row in released)
    assert all(row.last_error == "" for row in released)
    # The next pass takes them at once, and so on until all are sent, each once.
    while run_pass(app, clock=lambda: now[0], policy=policy):
        pass
    assert len(sent) == 6
    assert {row.status for row in rows()} == {OutboxMessage.SENT}
    assert all(row.attempts == 1 for row in rows())
