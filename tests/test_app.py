import json

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from expertbook.api.inputs import storable
from expertbook.extensions import db
from expertbook.models import Booking


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_healthz_503_when_the_database_fails(client, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(db.session, "execute", broken)
    assert client.get("/healthz").status_code == 503


@pytest.mark.parametrize("path", ["/", "/auth/login", "/healthz", "/nope", "/api/v1/ping"])
def test_security_headers_on_every_response(client, path):
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    script_src = next(p for p in csp.split(";") if p.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src
    assert "frame-ancestors 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_session_cookie_flags(client):
    cookie = client.get("/auth/login").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no-such-expert")
    assert response.status_code == 404
    assert "Not found" in response.text


def test_api_errors_are_json(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_unexpected_error_is_a_500_page_without_traceback(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = client.get("/boom")
    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text


def test_no_template_loads_from_another_host(app):
    import re
    from pathlib import Path

    for path in Path(app.template_folder).rglob("*.html"):
        assert not re.search(r'(src|href)="(https?:)?//', path.read_text()), path


def test_production_cookies_are_secure_and_need_a_secret(monkeypatch, tmp_path):
    from config import ProductionConfig
    from expertbook import create_app

    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(ProductionConfig)
    monkeypatch.setenv("SECRET_KEY", "a real secret")
    app = create_app(
        ProductionConfig,
        SECRET_KEY="a real secret",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.db'}",
        ASYNC_MODE="threading",
    )
    cookie = app.test_client().get("/auth/login").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


HUGE = "9" * 30


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", f"/dashboard/event-types/{HUGE}/edit"),
        ("POST", f"/dashboard/event-types/{HUGE}/toggle"),
        ("POST", f"/dashboard/tokens/{HUGE}/revoke"),
        ("GET", f"/api/v1/event-types/{HUGE}"),
        ("GET", f"/api/v1/event-types/{HUGE}/slots?from=2026-01-01&to=2026-01-01"),
        ("POST", f"/api/v1/event-types/{HUGE}/bookings"),
    ],
)
def test_ids_too_big_for_the_database_are_404(client, auth, make_user, method, path):
    make_user("coach", expert=True)
    auth.login("coach")
    token = auth.csrf_token("/dashboard/")
    response = client.open(path, method=method, data={"csrf_token": token})
    assert response.status_code == 404


def test_a_huge_page_number_is_fine(client, auth, make_user):
    make_user("ann")
    auth.login("ann")
    assert client.get(f"/bookings?page={HUGE}").status_code == 200
    assert client.get("/bookings?page=-5").status_code == 200


def test_cli_refuses_a_huge_token_id_in_one_line(runner):
    result = runner.invoke(args=["tokens", "revoke", HUGE])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 4


# Text PostgreSQL cannot take (a NUL) or UTF-8 cannot encode (a lone surrogate, which a JSON
# \ud800 escape makes): refused with a clear error on both databases, never a 500.
@pytest.mark.parametrize(
    "path",
    [
        "/coach%00",
        "/coach/sync%00",
        "/api/v1/experts/coach%00/event-types",
        "/bookings/abc%00",
        "/bookings/abc%00.ics",
    ],
)
def test_a_nul_in_the_path_names_nothing(any_app, sync, path):
    assert any_app.test_client().get(path).status_code == 404


def test_a_nul_in_a_form_is_refused(any_app, sync, make_user):
    from tests.conftest import AuthActions

    client = any_app.test_client()
    response = client.get(f"/api/v1/event-types/{sync.id}/slots?tz=UTC%00")
    assert response.status_code == 422  # a query parameter is its view's: an unknown zone
    make_user("ann")
    response = AuthActions(client).login("ann\x00")
    assert response.status_code == 400 and "NUL" in response.text


@pytest.mark.parametrize("notes", ["a\x00b", "\ud800", "ok \udfff"])
def test_json_text_no_database_stores_is_422(any_app, sync, notes):
    from tests.booking_fixtures import day_ahead

    body = {
        "start": day_ahead(3, 10).isoformat(),
        "name": "Ann",
        "email": "ann@example.com",
        "notes": notes,
    }
    response = any_app.test_client().post(
        f"/api/v1/event-types/{sync.id}/bookings",
        data=json.dumps(body),  # escapes the surrogate as \ud800, as a client's JSON would
        content_type="application/json",
    )
    assert response.status_code == 422
    assert response.json["error"]["field"] == "notes"
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 0


def test_storable_looks_into_nested_values_and_keys():
    assert storable({"weekly": {"mon": [["09:00", "17:00"]]}, "n": 1, "x": None})
    assert not storable({"weekly": {"mon": [["09:00\x00", "17:00"]]}})
    assert not storable({"weekly": {"m\ud800": []}})
    assert storable([[[[]]]] * 3)


def test_a_database_url_given_as_an_override_gets_the_green_driver_too():
    from config import TestingConfig
    from expertbook import create_app

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="postgresql://u@127.0.0.1/x")
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://u@127.0.0.1/x"


def test_a_database_lock_outside_a_booking_is_503_busy(app, client):
    import sqlite3

    @app.get("/api/v1/locked")
    def locked():
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))

    response = client.get("/api/v1/locked")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "busy" and response.headers["Retry-After"]


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", None]
)
def test_json_sent_as_anything_but_json_is_415(client, sync, content_type):
    """A page of any site can make a browser send a form or text/plain without asking (curl
    -d sends a form too): the API takes only application/json."""
    from tests.booking_fixtures import day_ahead

    body = {"start": day_ahead(3, 10).isoformat(), "name": "Ann", "email": "ann@example.com"}
    response = client.post(
        f"/api/v1/event-types/{sync.id}/bookings",
        data=json.dumps(body),
        headers={"Content-Type": content_type} if content_type else {},
    )
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 0
