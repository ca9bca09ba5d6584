"""Rate limits (Flask-Limiter) and request size limits."""

import time

import pytest

from config import TestingConfig
from expertbook import create_app
from expertbook.extensions import db, limiter
from tests.booking_fixtures import day_ahead
from tests.conftest import PASSWORD, AuthActions


def app_with_limits(tmp_path, **config):
    """An app with rate limits on (in memory, fresh), its context pushed while in use."""
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'limits.db'}",
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
        **config,
    )
    with app.app_context():
        db.create_all()
        limiter.reset()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def limited_app(tmp_path):
    yield from app_with_limits(tmp_path)


def test_login_attempts_per_account_are_limited(limited_app, make_user):
    make_user("ann")
    client = limited_app.test_client()
    auth = AuthActions(client)
    statuses = [auth.login("ann", "wrong password").status_code for _ in range(11)]
    assert statuses[:10] == [200] * 10
    assert statuses[10] == 429
    limited = auth.login("ann", PASSWORD)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0


def test_public_booking_is_limited_per_address_and_recovers(limited_app, sync, monkeypatch):
    client = limited_app.test_client()
    path = f"/api/v1/event-types/{sync.id}/bookings"
    body = {"start": "not a time", "name": "A", "email": "a@example.com"}
    statuses = [client.post(path, json=body).status_code for _ in range(61)]
    assert statuses[:60] == [422] * 60 and statuses[60] == 429
    response = client.post(path, json=body)
    assert response.json["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0
    # Another address is not affected.
    other = client.post(path, json=body, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert other.status_code == 422
    # After the window the address may book again.
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    start = day_ahead(3, 10).strftime("%Y-%m-%dT%H:%M:%SZ")
    fresh = client.post(path, json={**body, "start": start})
    assert fresh.status_code == 201


def test_registrations_per_address_are_limited(limited_app):
    client = limited_app.test_client()
    auth = AuthActions(client)
    statuses = [
        auth.post("/auth/register", {"username": f"u{i}", "email": "bad"}).status_code
        for i in range(11)
    ]
    assert statuses[:10] == [200] * 10 and statuses[10] == 429


def test_a_huge_body_is_refused_with_413(client, sync):
    response = client.post(
        f"/api/v1/event-types/{sync.id}/bookings",
        data='{"name": "' + "x" * 100_000 + '"}',
        content_type="application/json",
    )
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_a_huge_form_is_refused_with_413(client):
    response = client.post("/auth/login", data={"login": "x" * 100_000})
    assert response.status_code == 413


@pytest.fixture
def proxied_app(tmp_path):
    yield from app_with_limits(tmp_path, PROXY_COUNT=1)


def test_behind_a_proxy_the_forwarded_address_is_limited(proxied_app, sync):
    client = proxied_app.test_client()
    path = f"/api/v1/event-types/{sync.id}/bookings"

    def post(address):
        headers = {"X-Forwarded-For": address}
        return client.post(path, json={"start": "x"}, headers=headers).status_code

    assert [post("203.0.113.1") for _ in range(61)][-1] == 429
    assert post("203.0.113.2") == 422  # another client behind the same proxy


def test_the_booking_api_and_form_share_one_budget(limited_app, sync, coach):
    client = limited_app.test_client()
    api = f"/api/v1/event-types/{sync.id}/bookings"
    assert [client.post(api, json={"start": "x"}).status_code for _ in range(60)][-1] == 422
    start = day_ahead(3, 10).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = f"/{coach.username}/{sync.slug}/book?start={start}"
    form = AuthActions(client).post(path, {"name": "A", "email": "a@example.com"})
    assert form.status_code == 429


def test_api_token_creation_is_limited_per_account(limited_app, make_user):
    from expertbook.models import ApiToken
    from tests.conftest import Client

    make_user("coach", expert=True)
    limited_app.test_client_class = Client  # a fresh `g` per request, as in production
    auth = AuthActions(limited_app.test_client())
    auth.login("coach")
    statuses = [auth.post("/dashboard/tokens", {"name": f"t{i}"}).status_code for i in range(11)]
    assert statuses[:10] == [200] * 10 and statuses[10] == 429
    assert db.session.scalar(db.select(db.func.count(ApiToken.id))) == 10
