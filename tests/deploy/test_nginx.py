"""deploy/ as written: nginx in front of three app processes (from the systemd unit) and the
worker, on a fresh PostgreSQL database and Redis, all started here without root."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest
import socketio

from tests.conftest import pg_database_url, unavailable
from tests.deploy.stack import NGINX, ROOT, Stack
from tests.e2e.conftest import future_slot, make_site, server_env


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url):
    if not os.access(NGINX, os.X_OK):
        unavailable(f"{NGINX} not installed (Debian package nginx)")
    if shutil.which("openssl") is None:
        unavailable("openssl not installed")
    site = make_site(pg_database_url("expertbook_deploy"))
    env = server_env(site.database_url, REDIS_URL=redis_url)
    running = Stack(tmp_path_factory.mktemp("deploy"), env)
    try:
        running.start()
        running.site = site
        yield running
    finally:
        running.stop()


def api(stack, method, path, body=None, cookie=None, token=None):
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = f"expertbook_route={cookie}"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    status, _, raw = stack.request(method, path, data, headers)
    return status, json.loads(raw or b"null")


def served_by(stack, marker: str, deadline: float = 10) -> int:
    """The port of the app process whose access log shows `marker` (a unique query)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        hits = [app.port for app in stack.apps if marker in app.log_text()]
        if hits:
            assert len(hits) == 1, "one request reached two processes"
            return hits[0]
        time.sleep(0.05)
    raise AssertionError(f"no process logged {marker}")


def probe(stack, cookie: str) -> int:
    marker = uuid.uuid4().hex
    status, _, _ = stack.request(
        "GET", f"/healthz?probe={marker}", headers={"Cookie": f"expertbook_route={cookie}"}
    )
    assert status == 200
    return served_by(stack, marker)


@pytest.fixture(scope="module")
def event_type_id(stack):
    week = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    token = stack.site.token
    status, body = api(stack, "PUT", "/api/v1/availability", {"timezone": "UTC", "weekly": week},
                       token=token)  # fmt: skip
    assert status == 200, body
    fields = {"title": "Sync", "slug": "sync", "duration_minutes": 30}
    status, body = api(stack, "POST", "/api/v1/event-types", fields, token=token)
    assert status == 201, body
    return body["id"]


def test_pages_through_nginx_and_http_goes_to_https(stack, event_type_id):
    import http.client

    status, headers, page = stack.request("GET", "/coach/sync")
    assert status == 200 and b"data-slots-url" in page
    assert any(c.startswith("expertbook_route=") for c in headers.get("set-cookie", []))
    conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
    try:
        conn.request("GET", "/coach/sync", headers={"Host": "book.example.com"})
        response = conn.getresponse()
    finally:
        conn.close()
    assert response.status == 301
    assert response.getheader("Location") == "https://book.example.com/coach/sync"


def test_static_files_come_from_nginx_with_a_long_cache(stack, event_type_id):
    _, _, page = stack.request("GET", "/coach/sync")
    path = re.search(rb'src="(/static/js/booking\.js\?v=[0-9a-f]{12})"', page).group(1).decode()
    status, headers, body = stack.request("GET", path)
    assert status == 200
    assert body == (ROOT / "static/js/booking.js").read_bytes()
    assert headers["cache-control"] == ["public, max-age=31536000, immutable"]
    assert "javascript" in headers["content-type"][0]
    assert not any(path.split("?")[0] in app.log_text() for app in stack.apps)  # nginx's own


def test_the_route_cookie_keeps_a_browser_on_one_process(stack):
    """Sticky sessions: one cookie, one process; the cookies spread over all three."""
    seen = {}
    for n in range(24):
        cookie = f"browser-{n}"
        first = probe(stack, cookie)
        assert all(probe(stack, cookie) == first for _ in range(3))
        seen[cookie] = first
    assert set(seen.values()) == {app.port for app in stack.apps}


def test_the_app_sees_https_through_the_forwarded_headers(stack):
    """PROXY_COUNT=1: X-Forwarded-Proto makes the request secure, so a form POST over it
    needs a same-site Referer (Flask-WTF's HTTPS check), which a direct hit would not."""
    status, headers, page = stack.request(
        "GET", "/auth/login", headers={"Cookie": "expertbook_route=r"}
    )
    cookies = "; ".join(c.split(";", 1)[0] for c in headers.get("set-cookie", []))
    csrf = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1).decode()
    form = f"login=coach&password=coach-password&csrf_token={csrf}".encode()
    base = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookies}
    no_referer, _, answer = stack.request("POST", "/auth/login", form, base)
    assert no_referer == 400 and b"referrer" in answer.lower()
    referer = {**base, "Referer": f"{stack.url}/auth/login"}
    signed_in, headers, _ = stack.request("POST", "/auth/login", form, referer)
    assert signed_in == 302, headers


def test_a_socket_through_nginx_hears_a_booking_made_on_another_process(stack, event_type_id):
    heard, joined = [], threading.Event()
    arrived = threading.Event()
    client = socketio.Client(reconnection=False, ssl_verify=False)
    client.on("joined", lambda data: joined.set())
    client.on("slot_taken", lambda data: (heard.append(data), arrived.set()))
    socket_cookie = "socket-browser"
    client.connect(stack.url, transports=["websocket"], wait_timeout=10,
                   headers={"Cookie": f"expertbook_route={socket_cookie}"})  # fmt: skip
    try:
        assert client.transport() == "websocket"
        client.emit("join", {"event_type_id": event_type_id})
        assert joined.wait(10), "join was not acknowledged through nginx"
        socket_port = probe(stack, socket_cookie)
        cookie = next(c for c in (f"booker-{n}" for n in range(50))
                      if probe(stack, c) != socket_port)  # fmt: skip
        start = future_slot(days=3, hour=9)
        marker = uuid.uuid4().hex
        status, body = api(
            stack, "POST", f"/api/v1/event-types/{event_type_id}/bookings?m={marker}",
            {"start": start, "name": "Bo", "email": "bo@example.com"}, cookie=cookie,
        )  # fmt: skip
        assert status == 201, body
        assert served_by(stack, marker) not in (socket_port, None)
        assert arrived.wait(10), "slot_taken did not arrive through nginx"
        assert heard[0]["start"] == start and heard[0]["event_type_id"] == event_type_id
    finally:
        client.disconnect()


def test_the_worker_unit_runs(stack):
    worker = next(p for p in stack.others if p.name.startswith("expertbook-worker"))
    assert worker.process.poll() is None, worker.log_text()[-2000:]


def test_every_app_process_runs_from_the_unit(stack):
    for app in stack.apps:
        assert app.process.poll() is None
        assert f"127.0.0.1:{app.port}" in app.log_text()
    assert Path(stack.folder / "nginx" / "error.log").read_text().count("[emerg]") == 0
