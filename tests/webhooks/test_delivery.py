"""The webhook handler against a real receiver: signed POSTs, every failure a DeliveryError
(retried by the worker), the same bytes on every attempt, no redirects, a capped read, and
no private addresses unless allowed."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import current_app

from expertbook.extensions import db
from expertbook.models import utcnow
from expertbook.outbox import HANDLERS, DeliveryError, OutboxMessage, WebhookEndpoint, enqueue
from expertbook.webhooks import delivery
from expertbook.webhooks.endpoints import remove_endpoint
from expertbook.webhooks.events import ping_row, rows_for
from tests.booking_fixtures import day_ahead, insert_booking
from tests.calendar_servers import free_port
from tests.webhooks.receiver import Answer


def _endpoint(message: OutboxMessage) -> WebhookEndpoint:
    return db.session.get(WebhookEndpoint, message.endpoint_id)


def queued(rows) -> list[OutboxMessage]:
    enqueue(rows)
    db.session.commit()
    uids = [row["uid"] for row in rows]
    return list(db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.uid.in_(uids))))


@pytest.fixture
def hook(coach, sync, receiver, make_endpoint):
    """(message, secret): a booking.created delivery to the receiver, queued."""
    new = make_endpoint(coach, receiver.url + "/hooks/expertbook")
    booking = insert_booking(sync, day_ahead(2, 10))
    [message] = queued(rows_for(booking, "booked", now=utcnow()))
    return message, new.secret


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_handler_is_registered_for_webhooks():
    assert HANDLERS[OutboxMessage.WEBHOOK] is delivery.deliver


def test_a_delivery_is_a_signed_post_of_the_stored_body(hook, receiver):
    message, secret = hook
    assert delivery.deliver(message) == 200
    [got] = receiver.received
    assert got.path == "/hooks/expertbook"
    assert got.body == message.payload["body"].encode()
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-ExpertBook-Event"] == "booking.created"
    assert got.headers["X-ExpertBook-Delivery"] == message.uid == json.loads(got.body)["id"]
    assert hmac.compare_digest(got.headers["X-ExpertBook-Signature"], signed(secret, got.body))
    assert got.headers["User-Agent"].startswith("ExpertBook")
    assert not db.session().in_transaction()  # none was left open across the call


def test_a_wrong_secret_does_not_verify(hook, receiver):
    message, secret = hook
    delivery.deliver(message)
    [got] = receiver.received
    assert got.headers["X-ExpertBook-Signature"] != signed(secret + "x", got.body)
    assert got.headers["X-ExpertBook-Signature"] != signed(secret, got.body + b" ")


def test_every_failure_is_retried_with_the_same_bytes_until_the_receiver_recovers(
    hook, receiver, monkeypatch
):
    message, secret = hook
    monkeypatch.setitem(current_app.config, "WEBHOOK_TIMEOUT_SECONDS", 1)
    receiver.answer(
        Answer(500, b"Internal <b>error</b>\n\x00 trace..."),
        Answer(close=True),
        Answer(302, b"", location=receiver.url + "/elsewhere"),
        Answer(delay=3),
        Answer(404, b"no such hook"),
    )
    outcomes = []
    for _ in range(5):
        started = time.monotonic()
        with pytest.raises(DeliveryError) as failure:
            delivery.deliver(message)
        outcomes.append((failure.value, time.monotonic() - started))
    assert delivery.deliver(message) == 200  # recovered

    (e500, _), (closed, _), (moved, _), (hung, hung_for), (e404, _) = outcomes
    assert e500.status_code == 500 and e500.message.startswith("The receiver answered 500.")
    assert "Internal <b>error</b> trace..." in e500.message  # a printable excerpt
    assert closed.status_code is None and "closed" in closed.message
    assert moved.status_code == 302 and "redirect" in moved.message
    assert hung.status_code is None and "1 seconds" in hung.message and hung_for < 2.5
    assert e404.status_code == 404 and "no such hook" in e404.message
    assert not any(e.permanent for e, _ in outcomes)
    # Six attempts, one delivery: the same id, bytes and signature every time, and the
    # redirect was not followed.
    paths = [got.path for got in receiver.received]
    assert paths == ["/hooks/expertbook"] * 6
    assert len({got.body for got in receiver.received}) == 1
    assert {got.headers["X-ExpertBook-Delivery"] for got in receiver.received} == {message.uid}
    assert {got.headers["X-ExpertBook-Signature"] for got in receiver.received} == {
        signed(secret, receiver.received[0].body)
    }


def test_a_trickling_receiver_is_given_up_on_at_the_deadline(hook, receiver, monkeypatch):
    message, _ = hook
    monkeypatch.setitem(current_app.config, "WEBHOOK_TIMEOUT_SECONDS", 1)
    receiver.answer(Answer(200, b"ok", drip=0.2))  # each byte in time, the whole far too late
    started = time.monotonic()
    with pytest.raises(DeliveryError) as failure:
        delivery.deliver(message)
    assert time.monotonic() - started < 1.5
    assert "No answer within 1 seconds" in failure.value.message


def test_a_delivery_is_given_10_seconds_unless_configured(app):
    """The production default (the tests above and the server test in test_server.py give
    their deliveries less, so as not to wait on it)."""
    assert app.config["WEBHOOK_TIMEOUT_SECONDS"] == 10
    assert delivery._no_answer(app.config["WEBHOOK_TIMEOUT_SECONDS"]) == (
        "No answer within 10 seconds."
    )


@pytest.mark.parametrize("status", [200, 503])
def test_a_huge_answer_is_read_at_most_64_kb_and_never_kept(hook, receiver, status):
    message, _ = hook
    chunk = b"x" * 1024
    receiver.answer(Answer(status, chunk, repeat=100 * 1024))  # 100 MB
    started = time.monotonic()
    if status == 200:
        assert delivery.deliver(message) == 200
    else:
        with pytest.raises(DeliveryError) as failure:
            delivery.deliver(message)
        assert len(failure.value.message) < 300
    assert time.monotonic() - started < 5
    time.sleep(0.2)
    # What the socket took beyond the 64 KB read: its buffers, never the whole answer.
    assert receiver.sent < 20 * 1024 * 1024


def test_a_private_address_is_refused_at_delivery_too(app, hook, receiver):
    message, _ = hook
    app.config["ALLOW_PRIVATE_HOSTS"] = False  # the address was allowed when it was added
    with pytest.raises(DeliveryError) as failure:
        delivery.deliver(message)
    assert "private network" in failure.value.message
    assert receiver.received == []


def test_an_unreachable_receiver_is_a_failure_in_words(coach, make_endpoint):
    endpoint = make_endpoint(coach, f"http://127.0.0.1:{free_port()}/hook").endpoint
    [message] = queued([ping_row(endpoint, now=utcnow())])
    with pytest.raises(DeliveryError) as failure:
        delivery.deliver(message)
    assert "connection refused" in failure.value.message
    assert not failure.value.permanent


def test_a_removed_endpoint_gives_up_at_once(hook):
    message, _ = hook
    gone = OutboxMessage(
        uid=message.uid, kind=message.kind, event=message.event, payload=message.payload,
        endpoint_id=message.endpoint_id,
    )  # fmt: skip
    remove_endpoint(_endpoint(message))
    with pytest.raises(DeliveryError) as failure:
        delivery.deliver(gone)
    assert failure.value.permanent and "removed" in failure.value.message


def test_removing_an_endpoint_drops_its_undelivered_messages(hook):
    message, _ = hook
    uid = message.uid
    remove_endpoint(_endpoint(message))
    assert db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.uid == uid)) is None


def test_an_unreadable_secret_fails_for_good_and_is_not_sent(app, hook, receiver):
    message, _ = hook
    app.config["ENCRYPTION_KEY"] = "a key the secret was not made with"
    app.extensions.pop("expertbook.fernet", None)
    with pytest.raises(DeliveryError) as failure:
        delivery.deliver(message)
    assert "encryption key" in failure.value.message and failure.value.permanent
    assert receiver.received == []


def test_the_readme_recipe_checks_a_real_delivery(hook, receiver):
    """The Python snippet the README gives receivers, run as written."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Webhooks") :]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    recipe: dict = {}
    exec(snippet, recipe)  # noqa: S102 - our own README
    message, secret = hook
    delivery.deliver(message)
    [got] = receiver.received
    signature = got.headers["X-ExpertBook-Signature"]
    assert recipe["is_from_expertbook"](secret, got.body, signature)
    assert not recipe["is_from_expertbook"](secret, got.body + b"\n", signature)
    assert not recipe["is_from_expertbook"]("whsec_wrong", got.body, signature)
    assert not recipe["is_from_expertbook"](secret, got.body, None)
