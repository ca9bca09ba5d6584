"""The confirm step holds its time for the browser (no script needed), and the booking page
shows a held time to everybody else."""

import re

import pytest
import sqlalchemy as sa

from expertbook.extensions import db, socketio
from expertbook.models import Booking, Hold
from tests.public import ACTION_RE, CSRF_RE, KEY_RE, london_expert, next_week, slots_on

NY = "America/New_York"
HELD_PAGE = "Someone else is booking this time right now."
HELD_SLOT = re.compile(r'<span class="slot held" data-start="([^"]+)" aria-disabled="true">')


@pytest.fixture
def intro(make_user, make_event_type):
    return london_expert(make_user, make_event_type)


def first_slot(client):
    page = client.get(f"/ann/intro?date={next_week()}&tz={NY}").text
    start, href, _ = slots_on(page)[0]
    return start, href


def form_of(page: str) -> dict:
    return {
        "action": ACTION_RE.search(page).group(1).replace("&amp;", "&"),
        "csrf_token": CSRF_RE.search(page).group(1),
        "idempotency_key": KEY_RE.search(page).group(1),
    }


def submit(client, form: dict):
    data = {
        "csrf_token": form["csrf_token"],
        "idempotency_key": form["idempotency_key"],
        "name": "Grace Guest",
        "email": "grace@example.com",
        "notes": "",
    }
    return client.post(form["action"], data=data)


def holds() -> list[Hold]:
    db.session.expire_all()
    return db.session.scalars(sa.select(Hold)).all()


def test_the_confirm_page_holds_its_time_and_says_so(app, client, intro):
    watcher = socketio.test_client(app)
    watcher.emit("join", {"event_type_id": intro.id})
    watcher.get_received()
    start, href = first_slot(client)
    page = client.get(href)
    assert page.status_code == 200
    [hold] = holds()
    assert hold.event_type_id == intro.id and hold.session_key
    assert f'data-hold-id="{hold.id}"' in page.text
    assert page.headers["Cache-Control"] == "no-store"  # it carries the hold's token
    assert "holding this time for you" in page.text
    assert [e["args"][0]["start"] for e in watcher.get_received() if e["name"] == "slot_held"] == [
        start
    ]
    # A reload keeps the same hold.
    client.get(href)
    assert [h.id for h in holds()] == [hold.id]


def test_another_browser_sees_it_held_and_cannot_book_it(app, client, intro):
    start, href = first_slot(client)
    mine = client.get(href).text
    other = app.test_client()
    # The booking page shows it held, not as a link.
    page = other.get(f"/ann/intro?date={next_week()}&tz={NY}").text
    assert HELD_SLOT.findall(page) == [start]
    assert "Someone is booking this time" in page
    assert start not in [s for s, _, _ in slots_on(page)]
    # The confirm page says so and links back; no form.
    held = other.get(href, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert held.status_code == 409
    assert HELD_PAGE in held.text and "frees up within 5 minutes" in held.text
    assert ACTION_RE.search(held.text) is None
    # The holder books it.
    booked = submit(client, form_of(mine))
    assert booked.status_code == 302 and "/bookings/" in booked.headers["Location"]
    assert holds() == []


def test_a_form_sent_while_someone_else_holds_the_time(app, client, intro):
    start, href = first_slot(client)
    form = form_of(client.get(href).text)
    db.session.execute(sa.delete(Hold))
    db.session.commit()
    other = app.test_client()
    assert other.get(href, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 200
    response = submit(client, form)
    assert response.status_code == 200
    assert "Someone else is booking this time right now" in response.text
    assert "frees up within 5 minutes" in response.text
    assert db.session.scalars(sa.select(Booking)).all() == []


def test_the_expert_previewing_their_own_link_holds_nothing(client, intro, auth):
    auth.login("ann")
    _, href = first_slot(client)
    assert client.get(href).status_code == 200
    assert holds() == []


def test_a_form_booking_announces_the_holds_it_ended_elsewhere(app, client, intro):
    """The booking form tells the pages as the API does (realtime.announce_booked)."""
    page = client.get(f"/ann/intro?date={next_week()}&tz={NY}").text
    (start, href, _), (other, _, _) = slots_on(page)[:2]
    form = form_of(client.get(href).text)
    # Another tab of the same browser holds another time (which replaces the first hold).
    client.post(f"/api/v1/event-types/{intro.id}/holds", json={"start": other})
    watcher = socketio.test_client(app)
    watcher.emit("join", {"event_type_id": intro.id})
    watcher.get_received()
    assert submit(client, form).status_code == 302
    events = [(e["name"], e["args"][0]["start"]) for e in watcher.get_received()]
    assert events == [("slot_taken", start), ("slot_released", other)]
    assert holds() == []
