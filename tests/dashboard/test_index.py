import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from expertbook.availability import set_availability
from expertbook.extensions import db
from expertbook.models import Booking
from tests.booking_fixtures import insert_booking
from tests.dashboard import assert_csp_clean, sign_in_expert

PAGES = ["/dashboard/", "/dashboard/event-types/new", "/dashboard/availability"]


@pytest.fixture
def expert(make_user, auth):
    return sign_in_expert(make_user, auth, timezone="Europe/Berlin")


@pytest.mark.parametrize("path", PAGES + ["/dashboard/event-types/1/edit"])
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


@pytest.mark.parametrize("path", PAGES + ["/dashboard/event-types/1/edit"])
def test_client_is_sent_to_become_an_expert(client, auth, make_user, path):
    make_user("bob")
    auth.login("bob")
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/profile"


@pytest.mark.parametrize(
    "path", ["/dashboard/event-types/1/delete", "/dashboard/event-types/1/toggle"]
)
def test_client_cannot_post_buttons(client, auth, make_user, make_event_type, path):
    ann = make_user("ann", expert=True)
    make_event_type(ann)
    make_user("bob")
    auth.login("bob")
    response = auth.post(path, token_from="/profile")
    assert response.headers["Location"] == "/profile"
    assert len(ann.event_types) == 1 and ann.event_types[0].active


def test_new_expert_gets_three_steps(client, expert):
    page = client.get("/dashboard/").text
    assert "Set your hours" in page
    assert "Create an event type" in page
    assert "Share the link" in page
    assert "No upcoming bookings yet" in page


def test_expert_with_hours_is_asked_for_an_event_type(client, expert):
    set_availability(expert, "Europe/Berlin", {0: [(540, 1020)]})
    db.session.commit()
    page = client.get("/dashboard/").text
    assert "Share the link" not in page
    assert "No event types yet" in page


def test_event_type_card(client, expert, make_event_type):
    intro = make_event_type(expert, title="Intro call", slug="intro", location="google_meet")
    make_event_type(expert, title="Old offer", slug="old", active=False)
    page = client.get("/dashboard/").text
    assert "Intro call" in page and "30 min · Google Meet" in page
    assert 'value="http://testserver/ann/intro" readonly' in page
    assert "Copy link" in page
    assert f'href="/dashboard/event-types/{intro.id}/edit"' in page
    assert f'action="/dashboard/event-types/{intro.id}/toggle"' in page
    assert f'action="/dashboard/event-types/{intro.id}/delete"' in page
    assert page.count('badge badge-success">Active<') == 1
    assert page.count('badge badge-muted">Inactive<') == 1
    assert ">Deactivate<" in page and ">Activate<" in page
    # Experts with an event type no longer see the welcome steps.
    assert "Share the link" not in page


def test_hours_summary(client, expert):
    set_availability(expert, "Europe/Berlin", {0: [(540, 720), (780, 1020)], 4: [(600, 1440)]})
    db.session.commit()
    page = client.get("/dashboard/").text
    assert "<dt>Monday</dt><dd>09:00–12:00, 13:00–17:00</dd>" in page
    assert "<dt>Friday</dt><dd>10:00–24:00</dd>" in page
    assert '<dt>Tuesday</dt><dd class="muted">Unavailable</dd>' in page
    assert "Europe/Berlin" in page
    assert 'href="/dashboard/availability"' in page


def test_upcoming_bookings_are_the_next_ten_confirmed_in_the_experts_zone(
    client, expert, make_user, make_event_type
):
    intro = make_event_type(expert, title="Intro call", slug="intro")
    other = make_event_type(make_user("cat", expert=True), title="Not yours", slug="x")
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)
    insert_booking(intro, soon - timedelta(days=3), name="Past Client")
    insert_booking(intro, soon, name="Cancelled Client", status=Booking.CANCELLED)
    insert_booking(other, soon, name="Cats Client")
    for day in range(12):
        insert_booking(intro, soon + timedelta(days=day, hours=1), name=f"Client {day:02d}")

    page = client.get("/dashboard/").text

    shown = [f"Client {day:02d}" for day in range(12) if f"Client {day:02d}" in page]
    assert shown == [f"Client {day:02d}" for day in range(10)]
    assert page.index("Client 00") < page.index("Client 09")
    for name in ("Past Client", "Cancelled Client", "Cats Client"):
        assert name not in page
    first = soon + timedelta(hours=1)
    berlin = first.astimezone(ZoneInfo("Europe/Berlin"))
    assert berlin.strftime("%a %d %b %Y, %H:%M") in page
    assert "Intro call" in page


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_no_inline_script_or_style(client, expert, make_event_type, path):
    make_event_type(expert, title="Intro call", slug="intro")
    response = client.get(path)
    assert response.status_code == 200
    assert_csp_clean(response.text)
    assert re.search(
        r'<script src="/static/js/dashboard.js\?v=[0-9a-f]{12}"></script>', response.text
    )
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_static_assets_exist(client):
    for path in ("/static/js/dashboard.js", "/static/css/dashboard.css"):
        with client.get(path) as response:
            assert response.status_code == 200
