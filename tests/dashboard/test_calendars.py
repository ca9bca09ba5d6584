"""Connected calendars on the dashboard: connect (CalDAV and ICS), settings, sync now,
remove, and every failure said in words on the page."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa

from expertbook.calendars.models import BusyTime, CalendarConnection, ConnectedCalendar
from expertbook.extensions import db
from tests.booking_fixtures import day_ahead
from tests.calendars.test_api import event


@pytest.fixture
def signed_in(app, auth, coach):
    app.config["ALLOW_PRIVATE_HOSTS"] = True
    auth.login("coach")
    return coach


def connect(auth, **form):
    return auth.post("/dashboard/calendars", form, token_from="/dashboard/calendars")


def test_connecting_radicale_lists_its_calendars_and_hides_the_password(
    client, auth, signed_in, radicale
):
    radicale.make_calendar("Work")
    answer = connect(
        auth, kind="caldav", url=radicale.url, username=radicale.username,
        password=radicale.password,
    )  # fmt: skip
    assert answer.status_code == 302 and answer.location.endswith("/dashboard/calendars")
    page = client.get("/dashboard/calendars").text
    assert "Work" in page and "Last synced" in page and radicale.username not in page
    assert radicale.password not in page


def test_a_failed_connect_keeps_the_form_and_says_why(client, auth, signed_in, http_server):
    url = http_server.route("/x.ics", "<html>login</html>", content_type="text/html")
    answer = connect(auth, kind="ics", url=url)
    assert answer.status_code == 200
    assert "web page" in answer.text and url in answer.text  # what was typed stays
    assert db.session.query(CalendarConnection).count() == 0


def test_a_private_address_is_refused_without_the_setting(app, client, auth, signed_in):
    app.config["ALLOW_PRIVATE_HOSTS"] = False
    answer = connect(auth, kind="ics", url="http://127.0.0.1:9/x.ics")
    assert answer.status_code == 200 and "private" in answer.text.lower()
    assert db.session.query(CalendarConnection).count() == 0


@pytest.mark.parametrize(
    "form",
    [
        {"kind": "ics", "url": ""},
        {"kind": "ics", "url": "x" * 3000},
        {"kind": "teams", "url": "https://x.example/"},
        {"kind": "caldav", "url": "https://x.example/", "username": "", "password": "p"},
        {"kind": "caldav", "url": "https://x.example/", "username": "u", "password": ""},
    ],
)
def test_bad_input_is_a_form_message_never_a_500(client, auth, signed_in, form):
    answer = connect(auth, **form)
    assert answer.status_code == 200
    assert 'class="field-error"' in answer.text or "Not a valid choice" in answer.text
    assert db.session.query(CalendarConnection).count() == 0


def test_settings_sync_now_and_remove(client, auth, signed_in, sync, http_server):
    busy = day_ahead(3, 10)
    url = http_server.route("/cal.ics", event("a@example.com", busy))
    connect(auth, kind="ics", url=url)
    connection = db.session.scalar(sa.select(CalendarConnection))
    calendar_id = connection.calendars[0].id
    assert db.session.query(BusyTime).count() == 1

    # Unticking "blocks" clears its busy times; ticking it again reads them at once.
    base = f"/dashboard/calendars/{connection.id}"
    saved = auth.post(f"{base}/settings", {}, token_from="/dashboard/calendars")
    assert saved.status_code == 302
    assert db.session.query(BusyTime).count() == 0
    auth.post(f"{base}/settings", {"blocks": str(calendar_id)}, token_from="/dashboard/calendars")
    assert db.session.query(BusyTime).count() == 1

    # Sync now: a moved event moves its busy time; a broken feed shows its error in words.
    moved = busy + timedelta(hours=3)
    http_server.route("/cal.ics", event("a@example.com", moved))
    auth.post(f"{base}/sync", token_from="/dashboard/calendars")
    start = db.session.scalar(sa.select(BusyTime.start_at))
    assert start == moved.astimezone(UTC)
    http_server.route("/cal.ics", "", status=500)
    answer = auth.post(f"{base}/sync", token_from="/dashboard/calendars")
    page = client.get(answer.location).text
    assert "Error" in page and "500" in page
    assert db.session.query(BusyTime).count() == 1  # the last good sync still blocks

    auth.post(f"{base}/remove", token_from="/dashboard/calendars")
    assert db.session.query(CalendarConnection).count() == 0
    assert db.session.query(ConnectedCalendar).count() == 0
    assert db.session.query(BusyTime).count() == 0


def test_another_experts_connection_is_404(client, auth, make_user, signed_in, http_server):
    other = make_user("other", expert=True)
    connection = CalendarConnection(expert_id=other.id, kind="ics", url="https://x.example/a")
    db.session.add(connection)
    db.session.commit()
    for action in ("settings", "sync", "remove"):
        answer = auth.post(
            f"/dashboard/calendars/{connection.id}/{action}", token_from="/dashboard/calendars"
        )
        assert answer.status_code == 404
    assert db.session.get(CalendarConnection, connection.id) is not None
