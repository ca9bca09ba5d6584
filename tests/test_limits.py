"""Rate limits (Flask-Limiter) and request size limits."""

import time

import pytest
from flask_limiter import Limiter

from config import TestingConfig
from expertbook import create_app
from expertbook.extensions import db, limiter
from expertbook.models import utcnow
from tests.booking_fixtures import day_ahead
from tests.conftest import PASSWORD, AuthActions, Client


def app_with_limits(tmp_path, **config):
    """An app with rate limits on (in memory, fresh), its context pushed while in use."""
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'limits.db'}",
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
        **config,
    )
    app.test_client_class = Client  # a fresh `g` per request, as in production
    with app.app_context():
        db.create_all()
        limiter.reset()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def limited_app(tmp_path):
    yield from app_with_limits(tmp_path)


def test_with_limits_off_a_limited_view_evaluates_none(client, sync, monkeypatch):
    # Flask-Limiter evaluates a decorated view's limits even while they are off.
    evaluated = []
    monkeypatch.setattr(Limiter, "_check_request_limit", lambda *a, **k: evaluated.append(a))
    path = f"/api/v1/event-types/{sync.id}/bookings"
    body = {"start": "not a time", "name": "A", "email": "a@example.com"}
    statuses = [client.post(path, json=body).status_code for _ in range(61)]
    assert statuses == [422] * 61 and evaluated == []


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


def test_one_account_has_one_log_in_budget_by_any_of_its_names(limited_app, make_user):
    """Finding 4: `ann` and `ann@example.com` are one account, so one budget, from any
    address."""
    make_user("ann")
    elsewhere = limited_app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    token = AuthActions(elsewhere).csrf_token()
    auth = AuthActions(limited_app.test_client())
    names = ["ann", "ann@example.com", " ANN ", "Ann@Example.com"]
    statuses = [auth.login(names[i % 4], "wrong password").status_code for i in range(10)]
    assert statuses == [200] * 10
    assert auth.login("ann@example.com", "wrong password").status_code == 429
    form = {"login": "ann", "password": PASSWORD, "csrf_token": token}
    assert elsewhere.post("/auth/login", data=form).status_code == 429


def sign_up(auth, i, **fields):
    form = {"username": f"u{i}", "email": f"u{i}@example.com", "password": PASSWORD,
            "confirm": PASSWORD, **fields}  # fmt: skip
    return auth.post("/auth/register", form)


def test_registrations_count_accounts_made_not_forms_sent_back(limited_app):
    """Finding 11: a form with a mistake costs nothing of the 10-an-hour budget."""
    auth = AuthActions(limited_app.test_client())
    mistakes = [sign_up(auth, i, email="bad").status_code for i in range(12)]
    assert mistakes == [200] * 12
    assert [sign_up(auth, i).status_code for i in range(10)] == [302] * 10


def test_over_the_registration_limit_the_form_stays_with_the_wait(limited_app, make_user):
    make_user("taken")
    auth = AuthActions(limited_app.test_client())
    made = [sign_up(auth, i).status_code for i in range(9)]
    # A taken address answers like a sign-up that went through, and counts like one.
    taken = sign_up(auth, 9, email="taken@example.com").status_code
    assert made + [taken] == [302] * 10
    limited = sign_up(auth, 10, username="keepme")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    page = limited.text
    assert "Create your account" in page and "please wait" in page and "minutes" in page
    assert 'value="keepme"' in page and 'value="u10@example.com"' in page


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


def test_a_503_on_a_limited_route_keeps_its_own_retry_after(tmp_path):
    """Flask-Limiter puts Retry-After on every answer of a limited route (when its window
    resets, up to a minute): a booking POST answered 503 while the database is away must
    still say its own 5 s, and a 201 no Retry-After at all (found by bench/faults.py)."""
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}",
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
    )
    with app.app_context():
        limiter.reset()
    response = app.test_client().post(
        "/api/v1/event-types/1/bookings",
        json={
            # Within any horizon, so the database is asked (a start beyond it is refused first).
            "start": day_ahead(3, 10).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "name": "Ann",
            "email": "ann@example.com",
        },
    )
    assert response.status_code == 503, response.get_json()
    assert response.headers["Retry-After"] == str(app.config["UNAVAILABLE_RETRY_AFTER"])


def test_only_a_429_carries_the_limiters_retry_after(limited_app, coach, sync):
    client = limited_app.test_client()
    path = f"/api/v1/event-types/{sync.id}/bookings"
    start = day_ahead(3, 10).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = client.post(path, json={"start": start, "name": "A", "email": "a@ex.com"})
    assert answer.status_code == 201, answer.get_json()
    assert "Retry-After" not in answer.headers
    assert answer.headers["X-RateLimit-Remaining"] == "59"
    for _ in range(60):
        answer = client.post(path, json={"start": "x"})
    assert answer.status_code == 429
    assert 0 < int(answer.headers["Retry-After"]) <= 60


def test_webhook_adds_and_tests_by_the_api_are_limited_per_account(limited_app, make_user):
    """As on the dashboard, and in one budget with it: each makes the server send requests."""
    from expertbook.accounts import create_api_token
    from expertbook.webhooks.endpoints import add_endpoint

    coach, other = make_user("coach", expert=True), make_user("other", expert=True)
    limited_app.config["ALLOW_PRIVATE_HOSTS"] = True
    endpoint = add_endpoint(
        coach, "http://127.0.0.1:9/hook", ["booking.created"], now=utcnow()
    ).endpoint
    tokens = {user.username: create_api_token(user) for user in (coach, other)}
    db.session.commit()
    client = limited_app.test_client()

    def call(path, who="coach", body=None):
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        return client.post(path, json=body or {}, headers=headers).status_code

    adds = [call("/api/v1/webhooks", body={"url": "not a url"}) for _ in range(31)]
    assert adds[:30] == [422] * 30 and adds[30] == 429
    tests = [call(f"/api/v1/webhooks/{endpoint.id}/test") for _ in range(31)]
    assert tests[:30] == [202] * 30 and tests[30] == 429
    # Another account has its own budget; the dashboard shares this one's.
    assert call("/api/v1/webhooks", "other", {"url": "not a url"}) == 422
    auth = AuthActions(client)
    auth.login("coach")
    assert auth.post("/dashboard/webhooks", {"url": "not a url"}).status_code == 429


def test_holds_are_limited_to_20_a_minute_per_address(limited_app, sync):
    from datetime import timedelta

    client = limited_app.test_client()
    path = f"/api/v1/event-types/{sync.id}/holds"
    starts = [day_ahead(3, 0) + timedelta(minutes=30 * i) for i in range(21)]
    statuses = [
        client.post(path, json={"start": s.strftime("%Y-%m-%dT%H:%M:%SZ")}).status_code
        for s in starts
    ]
    assert statuses[:20] == [201] * 20 and statuses[20] == 429
    # Renewing and releasing are not placing: the holder can still end its hold.
    assert client.post("/api/v1/holds/" + "0" * 32 + "/renew").status_code == 404
    other = client.post(
        path, json={"start": starts[0].strftime("%Y-%m-%dT%H:%M:%SZ")},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )  # fmt: skip
    assert other.status_code == 201
