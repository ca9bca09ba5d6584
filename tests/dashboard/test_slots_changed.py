"""Issue 16, finding 3: open booking pages hear `slots_changed` after the expert's hours,
overrides or event types change (dashboard forms and the JSON API alike)."""

from __future__ import annotations

from datetime import date

import pytest

from expertbook.extensions import socketio
from tests.dashboard import sign_in_expert

NEXT_YEAR = date.today().year + 1


@pytest.fixture
def room(app, client, make_user, make_event_type, auth):
    """A signed-in expert with one event type, and a socket in that type's room."""
    expert = sign_in_expert(make_user, auth)
    event_type = make_event_type(expert, slug="intro")
    socket = socketio.test_client(app)
    socket.emit("join", {"event_type_id": event_type.id})
    socket.get_received()
    yield event_type, socket
    socket.disconnect()


def heard(socket, event_type) -> bool:
    received = socket.get_received()
    return {
        "name": "slots_changed",
        "args": [{"event_type_id": event_type.id}],
        "namespace": "/",
    } in received


def csrf(client) -> dict:
    page = client.get("/dashboard/availability").text
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    return {"X-CSRFToken": token}


@pytest.mark.parametrize(
    "path, data",
    [
        ("/dashboard/availability", {"timezone": "UTC", "mon-start": "09:00", "mon-end": "12:00"}),
        ("/dashboard/availability/overrides", {"date": f"{NEXT_YEAR}-12-24", "day_off": "y"}),
    ],
)
def test_saving_hours_on_the_dashboard_is_announced(auth, room, path, data):
    event_type, socket = room
    assert auth.post(path, data, token_from="/dashboard/availability").status_code == 302
    assert heard(socket, event_type)


def test_removing_an_override_is_announced(auth, room):
    event_type, socket = room
    day = f"{NEXT_YEAR}-12-24"
    auth.post("/dashboard/availability/overrides", {"date": day, "day_off": "y"})
    socket.get_received()
    auth.post(
        f"/dashboard/availability/overrides/{day}/delete", token_from="/dashboard/availability"
    )
    assert heard(socket, event_type)


def test_editing_or_switching_off_an_event_type_is_announced(auth, room):
    event_type, socket = room
    path = f"/dashboard/event-types/{event_type.id}/edit"
    form = {"title": "Intro", "slug": "intro", "duration_minutes": "45", "location": "zoom",
            "buffer_before_minutes": "0", "buffer_after_minutes": "0",
            "min_notice_minutes": "0", "max_days_ahead": "60", "active": "y"}  # fmt: skip
    assert auth.post(path, form).status_code == 302
    assert heard(socket, event_type)
    toggle = f"/dashboard/event-types/{event_type.id}/toggle"
    assert auth.post(toggle, token_from="/dashboard/").status_code == 302
    assert heard(socket, event_type)


def test_the_api_announces_hours_and_event_type_changes(client, room):
    event_type, socket = room
    headers = csrf(client)
    weekly = {"tue": [["10:00", "11:00"]]}
    response = client.put(
        "/api/v1/availability", json={"timezone": "UTC", "weekly": weekly}, headers=headers
    )
    assert response.status_code == 200
    assert heard(socket, event_type)
    response = client.patch(
        f"/api/v1/event-types/{event_type.id}", json={"min_notice_minutes": 120}, headers=headers
    )
    assert response.status_code == 200
    assert heard(socket, event_type)
