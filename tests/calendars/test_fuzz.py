"""Generated hostile input at the calendar API: never a 5xx, nothing half-written."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from expertbook.calendars.models import CalendarConnection, ConnectedCalendar
from expertbook.extensions import db
from tests.api import bearer
from tests.api.test_fuzz import FUZZ, json_values

urls = (
    st.text(max_size=60)
    | st.sampled_from(
        ["http://127.0.0.1/x.ics", "webcal://localhost/a", "https://[::1]/", "http://"]
    )
    | st.builds(lambda host: f"https://{host}/cal.ics", st.text(max_size=20))
)
connect_bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "kind": st.sampled_from(["caldav", "ics", "", "CALDAV"]) | json_values,
            "url": urls | json_values,
            "username": st.text(max_size=300) | json_values,
            "password": st.text(max_size=50) | json_values,
            "extra": json_values,
        },
    )
    | json_values
)
patch_bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "calendars": st.lists(
                st.fixed_dictionaries(
                    {}, optional={"id": st.integers(-5, 5) | json_values,
                                  "blocks": json_values, "writes": json_values},
                ) | json_values,
                max_size=4,
            ) | json_values,
            "x": json_values,
        },
    )
    | json_values
)  # fmt: skip


@pytest.fixture
def headers(coach):
    return bearer(coach)


@pytest.fixture
def connection(coach):
    connection = CalendarConnection(expert_id=coach.id, kind="caldav", url="https://c.example/")
    connection.calendars.append(ConnectedCalendar(expert_id=coach.id, url="https://c.example/a/"))
    connection.calendars.append(ConnectedCalendar(expert_id=coach.id, url="https://c.example/b/"))
    db.session.add(connection)
    db.session.commit()
    return connection


def state():
    db.session.rollback()
    return [
        (c.id, c.blocks, c.writes)
        for c in db.session.scalars(sa.select(ConnectedCalendar).order_by(ConnectedCalendar.id))
    ], db.session.scalar(sa.select(sa.func.count(CalendarConnection.id)))


@FUZZ
@given(body=connect_bodies)
def test_connect_survives_anything(client, headers, body):
    before = state()
    response = client.post(
        "/api/v1/calendars", data=json.dumps(body), content_type="application/json",
        headers=headers,
    )  # fmt: skip
    assert response.status_code in (400, 422), response.json
    assert response.json["error"]["message"]
    assert state() == before


@FUZZ
@given(body=patch_bodies)
def test_patch_survives_anything(client, headers, connection, body):
    before = state()
    response = client.patch(
        f"/api/v1/calendars/{connection.id}", data=json.dumps(body),
        content_type="application/json", headers=headers,
    )  # fmt: skip
    assert response.status_code in (200, 400, 422), response.json
    if response.status_code != 200:
        assert state() == before
    writers = [c for c in state()[0] if c[2]]
    assert len(writers) <= 1


@FUZZ
@given(
    connection_id=st.integers(min_value=-(2**70), max_value=2**70),
    method=st.sampled_from(["PATCH", "DELETE", "POST"]),
)
def test_any_connection_id_is_at_worst_a_404(client, headers, connection_id, method):
    path = f"/api/v1/calendars/{connection_id}" + ("/sync" if method == "POST" else "")
    response = client.open(path, method=method, json={"calendars": []}, headers=headers)
    assert response.status_code in (404, 405), response.json
