"""Offered slots through the API, hand-worked in January, when London is on UTC, New York on
UTC-5, Kolkata on UTC+5:30 and Auckland on UTC+13. The view uses the real clock, so the dates
are the first Monday of next January: always in the future, and within the 730 days ahead
that the event types here allow."""

import secrets
import time as time_module
from datetime import UTC, date, datetime, time, timedelta

import pytest

from expertbook.availability import set_availability
from expertbook.extensions import db
from expertbook.models import Booking, Hold
from tests.booking_fixtures import insert_booking

NINE_TO_FIVE = (9 * 60, 17 * 60)


def first_monday_of_next_january() -> date:
    new_year = date(datetime.now(UTC).year + 1, 1, 1)
    return new_year + timedelta(days=-new_year.weekday() % 7)


MONDAY = first_monday_of_next_january()


def at(day_offset: int, hour: int, minute: int = 0) -> datetime:
    """An instant in UTC, `day_offset` days after MONDAY."""
    return datetime.combine(MONDAY + timedelta(days=day_offset), time(hour, minute), UTC)


def hourly(day_offset: int, first_hour: int, last_hour: int) -> list[dict]:
    """The 60-minute slots starting on the hour from first_hour to last_hour (UTC)."""
    return [
        {
            "start": f"{at(day_offset, hour):%Y-%m-%dT%H:%M:%SZ}",
            "end": f"{at(day_offset, hour) + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}",
        }
        for hour in range(first_hour, last_hour + 1)
    ]


@pytest.fixture
def make_expert(make_user, make_event_type):
    """Factory: an expert working Mon-Fri 09:00-17:00 in `tz`, and a 60-minute event type."""

    def make(tz: str = "Europe/London", username: str = "ann", **fields):
        expert = make_user(username, expert=True)
        set_availability(expert, tz, {weekday: [NINE_TO_FIVE] for weekday in range(5)})
        db.session.commit()
        fields.setdefault("duration_minutes", 60)
        return make_event_type(expert, slug="consult", max_days_ahead=730, **fields)

    return make


@pytest.fixture
def consult(make_expert):
    return make_expert()


def get_slots(client, event_type, first: int = 0, last: int = 0, **params):
    days = {"from": MONDAY + timedelta(days=first), "to": MONDAY + timedelta(days=last)}
    query = {name: day.isoformat() for name, day in days.items()} | params
    return client.get(f"/api/v1/event-types/{event_type.id}/slots", query_string=query)


def test_default_zone_is_the_experts(client, consult):
    response = get_slots(client, consult)
    assert response.status_code == 200
    assert response.json == {
        "event_type_id": consult.id,
        "timezone": "Europe/London",
        "slots": hourly(0, 9, 16),
    }


@pytest.mark.parametrize(
    ("expert_tz", "viewer_tz", "viewer_day", "expected"),
    [
        ("Europe/London", "Europe/London", 5, []),  # Saturday
        ("Europe/London", "America/New_York", -1, []),  # NY's Sunday ends at Mon 05:00Z
        ("Europe/London", "America/New_York", 0, [(0, 9, 16)]),
        ("Europe/London", "Asia/Kolkata", 0, [(0, 9, 16)]),
        ("Europe/London", "Asia/Kolkata", 5, []),  # Kolkata's Saturday starts Fri 18:30Z
        ("Europe/London", "Pacific/Auckland", 1, [(0, 11, 16), (1, 9, 10)]),
        ("Europe/London", "Pacific/Auckland", 5, [(4, 11, 16)]),
        ("America/New_York", "America/New_York", 0, [(0, 14, 21)]),
        ("America/New_York", "Asia/Kolkata", 0, [(0, 14, 18)]),  # until Mon 18:30Z
        ("America/New_York", "Asia/Kolkata", 1, [(0, 19, 21), (1, 14, 18)]),
        ("America/New_York", "Pacific/Auckland", 5, [(4, 14, 21)]),  # from Fri 11:00Z
    ],
)
def test_days_are_read_in_the_viewers_zone(
    client, make_expert, expert_tz, viewer_tz, viewer_day, expected
):
    consult = make_expert(expert_tz)
    response = get_slots(client, consult, viewer_day, viewer_day, tz=viewer_tz)
    assert response.json["timezone"] == viewer_tz
    assert response.json["slots"] == [slot for row in expected for slot in hourly(*row)]


def test_a_range_of_days_and_the_slot_interval(client, make_expert):
    consult = make_expert(slot_interval_minutes=30)
    slots = get_slots(client, consult, 0, 6).json["slots"]
    # Starts every 30 minutes, 09:00 to 16:00, on the five weekdays: 15 a day.
    assert len(slots) == 5 * 15
    assert [slot["start"][11:16] for slot in slots[:3]] == ["09:00", "09:30", "10:00"]
    assert slots[-1]["start"] == f"{at(4, 16):%Y-%m-%dT%H:%M:%SZ}"


def test_confirmed_bookings_of_any_of_the_experts_types_take_slots(
    client, consult, make_event_type, make_expert
):
    insert_booking(consult, at(0, 10))
    insert_booking(consult, at(0, 14), status=Booking.CANCELLED)
    # Another type of the same expert, widened by its own 15 minutes after: 11:30-12:15.
    short = make_event_type(
        consult.expert, slug="short", duration_minutes=30, buffer_after_minutes=15
    )
    insert_booking(short, at(0, 11, 30))
    # Another expert's booking is no concern of ann's.
    insert_booking(make_expert(username="bob"), at(0, 15))
    slots = get_slots(client, consult).json["slots"]
    assert slots == hourly(0, 9, 9) + hourly(0, 13, 16)


def test_the_event_types_own_buffers_keep_clear_of_bookings(client, make_expert, make_event_type):
    consult = make_expert(buffer_before_minutes=30, buffer_after_minutes=30)
    short = make_event_type(consult.expert, slug="short", duration_minutes=15)
    insert_booking(short, at(0, 12, 30))
    # 13:00 would need 12:30-14:30 clear; 11:00 needs 10:30-12:30, which only touches it.
    assert get_slots(client, consult).json["slots"] == hourly(0, 9, 11) + hourly(0, 14, 16)


def test_at_most_62_days_a_call(client, consult):
    response = get_slots(client, consult, 0, 61)
    assert response.status_code == 200
    # 8 whole weeks and Monday to Saturday of a ninth: 45 working days of 8 slots.
    assert len(response.json["slots"]) == 45 * 8
    too_long = get_slots(client, consult, 0, 62)
    assert too_long.status_code == 422
    assert too_long.json["error"]["field"] == "to"


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({}, "from", "missing_field"),
        ({"from": 0}, "to", "missing_field"),
        ({"to": 0}, "from", "missing_field"),
        ({"from": "2027-13-01", "to": 0}, "from", "invalid_field"),
        ({"from": "tomorrow", "to": 0}, "from", "invalid_field"),
        ({"from": 0, "to": "2027-02-30"}, "to", "invalid_field"),
        ({"from": 0, "to": -1}, "to", "invalid_field"),
        ({"from": 0, "to": 62}, "to", "invalid_field"),
        ({"from": "0001-01-01", "to": "0001-01-01"}, "from", "invalid_field"),
        ({"from": "9999-12-30", "to": "9999-12-31"}, "to", "invalid_field"),
        ({"from": 0, "to": 0, "tz": "Mars/Olympus"}, "tz", "invalid_field"),
        ({"from": 0, "to": 0, "tz": "../../etc/passwd"}, "tz", "invalid_field"),
        ({"from": 0, "to": 0, "tz": ""}, "tz", "invalid_field"),
    ],
)
def test_bad_queries_are_422(client, consult, query, field, code):
    query = {
        name: (MONDAY + timedelta(days=value)).isoformat() if isinstance(value, int) else value
        for name, value in query.items()
    }
    response = client.get(f"/api/v1/event-types/{consult.id}/slots", query_string=query)
    assert response.status_code == 422
    assert (response.json["error"]["code"], response.json["error"]["field"]) == (code, field)


def test_an_unknown_or_inactive_event_type_is_404(client, consult):
    assert get_slots(client, consult).status_code == 200
    consult.active = False
    db.session.commit()
    assert get_slots(client, consult).status_code == 404
    response = client.get("/api/v1/event-types/999/slots?from=2027-01-04&to=2027-01-04")
    assert (response.status_code, response.json["error"]["code"]) == (404, "not_found")


def test_slots_and_bookings_on_each_database(any_app, make_expert):
    client = any_app.test_client()
    consult = make_expert()
    insert_booking(consult, at(0, 9))
    insert_booking(consult, at(1, 16))
    response = get_slots(client, consult, 0, 1, tz="America/New_York")
    assert response.json["slots"] == hourly(0, 10, 16) + hourly(1, 9, 15)


def test_week_dates_are_not_days(client, make_user, make_event_type):
    event_type = make_event_type(make_user("wk", expert=True))
    answer = client.get(f"/api/v1/event-types/{event_type.id}/slots?from=2026-W48-1&to=2026-W48-2")
    assert answer.status_code == 422 and answer.json["error"]["field"] == "from"


def test_401_names_the_bearer_scheme(client):
    answer = client.get("/api/v1/event-types")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def place_hold(event_type, start: datetime, expires_in: timedelta) -> Hold:
    """A hold row written directly (as holds.place_hold would, version bump included)."""
    hold = Hold(
        id=secrets.token_hex(16),
        expert_id=event_type.expert_id,
        event_type_id=event_type.id,
        start_at=start,
        end_at=start + timedelta(minutes=event_type.duration_minutes),
        expires_at=datetime.now(UTC) + expires_in,
        token_hash=secrets.token_hex(32),
    )
    db.session.add(hold)
    event_type.expert.schedule_version += 1
    db.session.commit()
    return hold


def test_pending_requests_and_live_holds_take_slots(any_app, make_expert, make_event_type):
    client = any_app.test_client()
    consult = make_expert()
    insert_booking(consult, at(0, 10), status=Booking.PENDING)
    insert_booking(consult, at(0, 11), status=Booking.DECLINED)
    # A hold of another type, widened by its type's 15 minutes after: 13:00-13:45.
    short = make_event_type(
        consult.expert, slug="short", duration_minutes=30, buffer_after_minutes=15
    )
    place_hold(short, at(0, 13), timedelta(minutes=5))
    place_hold(consult, at(0, 15), timedelta(seconds=-1))  # expired: ignored
    slots = get_slots(client, consult).json["slots"]
    assert slots == hourly(0, 9, 9) + hourly(0, 11, 12) + hourly(0, 14, 16)


def test_a_cached_answer_gives_the_slot_back_when_the_hold_expires(any_app, make_expert):
    client = any_app.test_client()
    consult = make_expert()
    hold = place_hold(consult, at(0, 13), timedelta(seconds=2))
    assert hourly(0, 13, 13)[0] not in get_slots(client, consult).json["slots"]
    # The hold ends by itself: nothing bumps the version (the sweeper has not run), yet the
    # answer cached while it was live is not served past its expiry.
    time_module.sleep(max(0.0, (hold.expires_at - datetime.now(UTC)).total_seconds()) + 0.05)
    assert get_slots(client, consult).json["slots"] == hourly(0, 9, 16)


def test_a_full_day_or_week_offers_nothing(any_app, make_expert):
    client = any_app.test_client()
    consult = make_expert("America/New_York", max_per_day=2)
    insert_booking(consult, at(0, 14))
    insert_booking(consult, at(1, 1))  # Monday 20:00 in New York
    insert_booking(consult, at(1, 14), status=Booking.CANCELLED)
    days = {slot["start"][:10] for slot in get_slots(client, consult, 0, 6).json["slots"]}
    assert days == {f"{MONDAY + timedelta(days=n)}" for n in range(1, 5)}
    consult.max_per_day, consult.max_per_week = None, 3
    db.session.commit()
    insert_booking(consult, at(3, 14))
    # Monday to Sunday in New York: full; the next Monday is another week.
    assert get_slots(client, consult, 0, 6).json["slots"] == []
    assert get_slots(client, consult, 7, 7).json["slots"] == hourly(7, 14, 21)
