"""Webhooks over the JSON API: add (the secret once), list, remove, test, deliveries; bad
input is 422 with its field; another expert's webhook is 404; a session needs CSRF."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.models import utcnow
from expertbook.outbox import OutboxMessage, WebhookEndpoint, enqueue
from expertbook.webhooks.endpoints import MAX_ENDPOINTS
from expertbook.webhooks.events import EVENTS, ping_row
from tests.api import bearer
from tests.webhooks.receiver import Answer

ALL = list(EVENTS)


@pytest.fixture
def headers(coach):
    return bearer(coach)


def add(client, headers, url, events=ALL):
    return client.post("/api/v1/webhooks", json={"url": url, "events": events}, headers=headers)


def test_add_shows_the_secret_once_and_stores_it_encrypted(client, headers, receiver, private_ok):
    answer = add(client, headers, receiver.url + "/hook", ["booking.cancelled", "booking.created"])
    assert answer.status_code == 201, answer.json
    assert answer.headers["Cache-Control"] == "no-store"
    created = answer.json
    assert created["url"] == receiver.url + "/hook"
    assert created["events"] == ["booking.created", "booking.cancelled"]  # in the usual order
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    stored = db.session.get(WebhookEndpoint, created["id"])
    assert created["secret"] not in stored.secret  # encrypted at rest
    listed = client.get("/api/v1/webhooks", headers=headers).json["webhooks"]
    assert listed == [{k: v for k, v in created.items() if k != "secret"}]
    one = client.get(f"/api/v1/webhooks/{created['id']}", headers=headers).json
    assert "secret" not in one and one["id"] == created["id"]


def test_the_shown_secret_signs_the_deliveries(client, headers, receiver, private_ok):
    created = add(client, headers, receiver.url + "/hook").json
    answer = client.post(f"/api/v1/webhooks/{created['id']}/test", headers=headers)
    assert answer.status_code == 202, answer.json
    ping = answer.json["delivery"]
    assert ping["event"] == "ping" and ping["status"] == "pending"
    assert ping["attempts"] == 0 and ping["delivered_at"] is None
    [got] = receiver.wait_for(1)  # delivered by the worker (inline in tests)
    expected = hmac.new(created["secret"].encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-ExpertBook-Signature"] == f"sha256={expected}"
    assert got.headers["X-ExpertBook-Delivery"] == ping["id"]
    assert got.headers["X-ExpertBook-Event"] == "ping"


def test_deliveries_newest_first_with_status_and_errors(
    client, headers, receiver, private_ok, coach
):
    created = add(client, headers, receiver.url + "/hook").json
    endpoint = db.session.get(WebhookEndpoint, created["id"])
    rows = [ping_row(endpoint, now=utcnow()) for _ in range(3)]
    enqueue(rows)
    db.session.commit()
    first, second, third = (
        db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.uid == r["uid"]))
        for r in rows
    )
    first.status, first.status_code, first.attempts = OutboxMessage.SENT, 204, 1
    first.delivered_at = utcnow()
    second.status, second.status_code, second.attempts = OutboxMessage.FAILED, 500, 12
    second.last_error = "The receiver answered 500."
    db.session.commit()
    answer = client.get(f"/api/v1/webhooks/{created['id']}/deliveries", headers=headers)
    assert answer.status_code == 200
    deliveries = answer.json["deliveries"]
    assert [d["id"] for d in deliveries] == [third.uid, second.uid, first.uid]
    shown = {d["id"]: d for d in deliveries}
    assert shown[first.uid]["status"] == "sent" and shown[first.uid]["status_code"] == 204
    assert shown[first.uid]["delivered_at"].endswith("Z")
    assert shown[second.uid]["status"] == "failed" and shown[second.uid]["attempts"] == 12
    assert shown[second.uid]["last_error"] == "The receiver answered 500."
    assert shown[second.uid]["delivered_at"] is None
    for delivery in deliveries:
        assert {"id", "event", "status_code", "attempts", "delivered_at"} <= set(delivery)
    limited = client.get(f"/api/v1/webhooks/{created['id']}/deliveries?limit=1", headers=headers)
    assert [d["id"] for d in limited.json["deliveries"]] == [third.uid]


@pytest.mark.parametrize("limit", ["0", "101", "x", "-1", ""])
def test_a_bad_deliveries_limit_is_422(client, headers, receiver, private_ok, limit):
    created = add(client, headers, receiver.url + "/hook").json
    answer = client.get(
        f"/api/v1/webhooks/{created['id']}/deliveries?limit={limit}", headers=headers
    )
    assert answer.status_code == 422 and answer.json["error"]["field"] == "limit"


def test_remove_stops_everything(client, headers, receiver, private_ok):
    created = add(client, headers, receiver.url + "/hook").json
    receiver.answer(*[Answer(500)] * 3)
    client.post(f"/api/v1/webhooks/{created['id']}/test", headers=headers)
    answer = client.delete(f"/api/v1/webhooks/{created['id']}", headers=headers)
    assert answer.status_code == 204
    assert client.get("/api/v1/webhooks", headers=headers).json["webhooks"] == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0
    for method, path in [
        ("DELETE", f"/api/v1/webhooks/{created['id']}"),
        ("GET", f"/api/v1/webhooks/{created['id']}/deliveries"),
        ("POST", f"/api/v1/webhooks/{created['id']}/test"),
    ]:
        assert client.open(path, method=method, headers=headers).status_code == 404


def test_another_experts_webhook_is_not_found(client, headers, receiver, private_ok, make_user):
    created = add(client, headers, receiver.url + "/hook").json
    other = bearer(make_user("other", expert=True))
    hook = f"/api/v1/webhooks/{created['id']}"
    assert client.get(hook, headers=other).status_code == 404
    assert client.get(hook + "/deliveries", headers=other).status_code == 404
    assert client.post(hook + "/test", headers=other).status_code == 404
    assert client.delete(hook, headers=other).status_code == 404
    assert client.get("/api/v1/webhooks", headers=other).json["webhooks"] == []
    assert db.session.get(WebhookEndpoint, created["id"]) is not None
    assert receiver.received == []


def test_clients_and_strangers_are_refused(client, receiver, make_user):
    assert client.get("/api/v1/webhooks").status_code == 401
    assert client.post("/api/v1/webhooks", json={}).status_code == 401
    plain = bearer(make_user("plain"))
    assert client.get("/api/v1/webhooks", headers=plain).status_code == 403
    assert add(client, plain, receiver.url).status_code == 403


def test_a_session_needs_the_csrf_header(client, auth, coach, receiver, private_ok):
    auth.login("coach")
    body = {"url": receiver.url + "/hook", "events": ALL}
    assert client.post("/api/v1/webhooks", json=body).status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0
    token = auth.csrf_token("/dashboard/webhooks")
    answer = client.post("/api/v1/webhooks", json=body, headers={"X-CSRFToken": token})
    assert answer.status_code == 201
    hook = f"/api/v1/webhooks/{answer.json['id']}"
    assert client.post(hook + "/test").status_code == 400
    assert client.delete(hook).status_code == 400
    assert client.delete(hook, headers={"X-CSRFToken": token}).status_code == 204


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"events": ALL}, "url", "give the address"),
        ({"url": "", "events": ALL}, "url", "give the address"),
        ({"url": 42, "events": ALL}, "url", "give the address"),
        ({"url": "ftp://example.com/hook", "events": ALL}, "url", "https://"),
        ({"url": "webcal://example.com/hook", "events": ALL}, "url", "https://"),
        ({"url": "https://" + "a" * 2050, "events": ALL}, "url", "At most 2048"),
        ({"url": "https://user:pw@example.com/", "events": ALL}, "url", "not in the address"),
        ({"url": "https://no-such-host.invalid/", "events": ALL}, "url", "not found"),
        ({"url": "http://127.0.0.1:9/hook", "events": ALL}, "url", "private network"),
        ({"url": "http://[::1]/hook", "events": ALL}, "url", "private network"),
        ({"url": "http://169.254.169.254/latest", "events": ALL}, "url", "private network"),
        ({"url": "http://10.0.0.1/", "events": ALL}, "url", "private network"),
        ({"url": "https://example.com/hook"}, "events", "A list of events"),
        ({"url": "https://example.com/hook", "events": []}, "events", "at least one"),
        ({"url": "https://example.com/hook", "events": "booking.created"}, "events", "A list"),
        ({"url": "https://example.com/hook", "events": [1]}, "events", "A list"),
        ({"url": "https://example.com/hook", "events": ["booking.paid"]}, "events", "Unknown"),
        ({"url": "https://example.com/hook", "events": ["ping"]}, "events", "Unknown"),
        ({"url": "https://example.com/hook", "events": ALL, "secret": "x"}, "secret", "Unknown"),
    ],
)
def test_bad_input_is_422_with_its_field_and_stores_nothing(client, headers, body, field, words):
    answer = client.post("/api/v1/webhooks", json=body, headers=headers)
    assert answer.status_code == 422, answer.json
    error = answer.json["error"]
    assert error["field"] == field and words in error["message"], error
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


@pytest.mark.parametrize("data", ["[]", "not json", '"url"'])
def test_a_body_that_is_not_an_object_is_400(client, headers, data):
    answer = client.post(
        "/api/v1/webhooks", data=data, headers={**headers, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_json"


def test_at_most_ten_webhooks(client, headers, receiver, private_ok):
    for i in range(MAX_ENDPOINTS):
        assert add(client, headers, f"{receiver.url}/hook/{i}").status_code == 201
    answer = add(client, headers, receiver.url + "/one-too-many")
    assert answer.status_code == 422
    assert answer.json["error"] == {
        "code": "limit_reached",
        "field": "url",
        "message": f"At most {MAX_ENDPOINTS} webhooks.",
    }
