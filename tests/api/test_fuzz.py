"""Generated hostile input at the public booking and slots endpoints: never a 5xx, and the
bookings table changes only on a 201."""

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expertbook.extensions import db
from expertbook.models import Booking
from tests.booking_fixtures import NOW, day_ahead

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=10,
)  # fmt: skip
real_start = st.sampled_from([day_ahead(3, h).strftime("%Y-%m-%dT%H:%M:%SZ") for h in (9, 10)])
aware = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
offsets = st.builds(
    lambda d, minutes: (
        f"{d.isoformat()}{'+' if minutes >= 0 else '-'}"
        f"{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    ),
    st.datetimes(),
    st.integers(-1439, 1439),
)  # extreme offsets at the calendar's ends
times = real_start | st.text(max_size=30) | st.datetimes().map(lambda d: d.isoformat()) | aware
times = times | offsets
booking_bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "start": times | json_values,
            "name": st.text(max_size=120) | json_values,
            "email": st.emails() | st.text(max_size=30) | json_values,
            "notes": st.text(max_size=50) | json_values,
            "extra": json_values,
        },
    )
    | json_values
)


def count() -> int:
    return db.session.scalar(sa.select(sa.func.count(Booking.id)))


@FUZZ
@given(body=booking_bodies, key=st.none() | st.text(max_size=300))
def test_booking_endpoint_survives_anything(client, sync, body, key):
    before = count()
    headers = {"Idempotency-Key": key} if key is not None and key.isprintable() else {}
    response = client.post(
        f"/api/v1/event-types/{sync.id}/bookings",
        data=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code < 500, response.json
    assert response.is_json and ("error" in response.json or response.status_code == 201)
    after = count()
    if response.status_code == 201:
        assert after in (before, before + 1)  # a replayed idempotency key adds nothing
    else:
        assert after == before


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["from", "to", "tz", "other"]),
        st.text(max_size=30) | st.dates().map(str) | st.sampled_from(["UTC", "Asia/Kolkata"]),
    )
)
def test_slots_endpoint_survives_anything(client, sync, params):
    response = client.get(f"/api/v1/event-types/{sync.id}/slots", query_string=params)
    assert response.status_code in (200, 422), response.json


@FUZZ
@given(
    event_type_id=st.integers(min_value=-(2**70), max_value=2**70),
    method=st.sampled_from(["GET", "PATCH", "DELETE"]),
)
def test_any_event_type_id_is_at_worst_a_404(client, sync, event_type_id, method):
    for path in (
        f"/api/v1/event-types/{event_type_id}",
        f"/api/v1/event-types/{event_type_id}/slots",
    ):
        response = client.open(path, method=method if "slots" not in path else "GET")
        assert response.status_code in (200, 401, 404, 405, 422), response.status_code


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
content_types = (
    st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain",
         "application/x-www-form-urlencoded", "multipart/form-data", "application/ld+json"]
    )
    | printable
)  # fmt: skip
origins = st.none() | st.sampled_from(["http://testserver", "https://evil.example", "null"])
nested = st.builds(
    lambda n, open_, close: open_ * n + close * (n if n % 2 else 0),
    st.integers(1, 40_000),
    st.sampled_from(["[", '{"a":']),
    st.sampled_from(["]", "}"]),
)
raw_bodies = st.binary(max_size=200) | nested | st.just(
    json.dumps({"start": day_ahead(3, 9).strftime("%Y-%m-%dT%H:%M:%SZ"), "name": "Ann",
                "email": "ann@example.com"})
)  # fmt: skip


@FUZZ
@given(raw=raw_bodies, content_type=st.none() | content_types, origin=origins | printable)
def test_booking_endpoint_survives_any_body_content_type_and_origin(
    client, sync, raw, content_type, origin
):
    before = count()
    headers = {"Origin": origin} if origin is not None else {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(f"/api/v1/event-types/{sync.id}/bookings", data=raw, headers=headers)
    assert response.status_code < 500, response.json
    assert response.is_json and ("error" in response.json or response.status_code == 201)
    if response.status_code == 201:
        assert origin in (None, "http://testserver")
        assert content_type.startswith("application/") and "json" in content_type
        assert count() in (before, before + 1)
    else:
        assert count() == before


@pytest.fixture
def past_booking(make_booking):
    booking, _ = make_booking(day_ahead(-1, 10), now=NOW - timedelta(days=2))
    return booking


@FUZZ
@given(token=st.none() | printable, action=st.sampled_from(["", ".ics", "/reschedule", "/cancel"]))
def test_manage_link_pages_survive_any_token(client, past_booking, token, action):
    booking = past_booking
    path = f"/bookings/{booking.uid}{action}"
    query = {"token": token} if token is not None else {}
    method = client.post if action == "/cancel" else client.get
    response = method(path, query_string=query)
    assert response.status_code in (200, 302, 400, 403, 404), response.status_code
    db.session.expire_all()
    assert (booking.status, booking.sequence) == ("confirmed", 0)
