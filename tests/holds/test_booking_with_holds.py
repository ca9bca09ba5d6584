"""Holds and bookings together, on SQLite and PostgreSQL: a held time is refused to
everybody but its holder, whose booking ends the hold."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from expertbook import holds
from expertbook.availability import set_availability
from expertbook.extensions import db
from expertbook.models import Booking, Hold

from .conftest import iso, start_at


@pytest.fixture
def expert_type(any_app, make_user, make_event_type):
    expert = make_user("coach", expert=True)
    set_availability(expert, "UTC", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    return make_event_type(expert, slug="sync", duration_minutes=30)


def book(client, event_type, start, **headers):
    return client.post(
        f"/api/v1/event-types/{event_type.id}/bookings",
        json={"start": iso(start), "name": "Ann", "email": "ann@example.com"},
        headers=headers,
    )


def test_a_held_time_is_booked_by_its_holder_only(any_app, expert_type):
    holder, other = any_app.test_client(), any_app.test_client()
    start = start_at()
    body = holder.post(
        f"/api/v1/event-types/{expert_type.id}/holds", json={"start": iso(start)}
    ).json
    refused = book(other, expert_type, start)
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "slot_held"
    assert 0 < refused.json["error"]["retry_after"] <= 300
    # The holder books through the hold by its token (from any client) ...
    booked = book(other, expert_type, start, **{"X-Hold-Token": body["hold_token"]})
    assert booked.status_code == 201, booked.json
    # ... which ends the hold with the booking.
    assert db.session.scalars(sa.select(Hold)).all() == []


def test_the_holder_books_through_the_browser_session(any_app, expert_type):
    holder = any_app.test_client()
    start = start_at()
    holder.post(f"/api/v1/event-types/{expert_type.id}/holds", json={"start": iso(start)})
    assert book(holder, expert_type, start).status_code == 201


def test_places_replaces_releases_and_sweeps(any_app, expert_type):
    now = datetime.now(UTC)
    start = start_at()
    hold, token, released = holds.place_hold(
        expert_type.id, start, holder_session_key="a" * 64, address="10.0.0.1", now=now
    )
    assert released == []
    with pytest.raises(holds_error("SlotHeld")) as error:
        holds.place_hold(
            expert_type.id, start, holder_session_key="b" * 64, address="10.0.0.2", now=now
        )
    assert error.value.retry_after == 300
    # The same session's next hold replaces it.
    second, _, released = holds.place_hold(
        expert_type.id, start_at(hour=11), holder_session_key="a" * 64, address="10.0.0.3",
        now=now,
    )  # fmt: skip
    assert [h.id for h in released] == [hold.id]
    assert holds.release_hold(second.id, holds.Holder(session_key="b" * 64)) is None
    assert holds.renew_hold(second.id, holds.Holder(), now) is None
    renewed = holds.renew_hold(
        second.id, holds.Holder(session_key="a" * 64), now + timedelta(minutes=1)
    )
    assert renewed.expires_at == now + timedelta(minutes=1) + holds.HOLD_TTL
    assert holds.sweep_expired(now + timedelta(minutes=5)) == []
    swept = holds.sweep_expired(now + timedelta(minutes=6, seconds=1))
    assert [h.id for h in swept] == [second.id]
    assert db.session.scalars(sa.select(Hold)).all() == []


def holds_error(name):
    from expertbook import booking

    return getattr(booking, name)


def test_a_hold_respects_the_day_limit(any_app, expert_type, make_event_type):
    limited = make_event_type(expert_type.expert, slug="once", max_per_day=1)
    client = any_app.test_client()
    start = start_at()
    assert book(client, limited, start).status_code == 201
    response = client.post(
        f"/api/v1/event-types/{limited.id}/holds", json={"start": iso(start + timedelta(hours=2))}
    )
    assert response.status_code == 409
    assert response.json["error"]["code"] == "slot_unavailable"


def test_the_same_start_again_keeps_the_hold_and_the_address_has_one(any_app, expert_type):
    now = datetime.now(UTC)
    first, token, _ = holds.place_hold(
        expert_type.id, start_at(), holder_session_key="a" * 64, address="10.0.0.1", now=now
    )
    again, new_token, released = holds.place_hold(
        expert_type.id, start_at(), holder_session_key="a" * 64, address="10.0.0.1",
        now=now + timedelta(minutes=1),
    )  # fmt: skip
    assert again.id == first.id and released == [] and new_token != token
    assert again.event_type_ids == (expert_type.id,)
    [row] = db.session.scalars(sa.select(Hold).execution_options(populate_existing=True)).all()
    assert row.expires_at == now + timedelta(minutes=1) + holds.HOLD_TTL
    # Another browser at the same address, another time: it replaces that hold.
    other, _, released = holds.place_hold(
        expert_type.id, start_at(hour=12), holder_session_key="b" * 64, address="10.0.0.1",
        now=now,
    )  # fmt: skip
    assert [h.id for h in released] == [first.id]
    assert released[0].start_at == first.start_at
    assert db.session.scalars(sa.select(Hold.id)).all() == [other.id]


def test_the_sweep_keeps_a_hold_renewed_after_it_read_the_expired(
    any_app, expert_type, monkeypatch
):
    """A renewal (it takes no lock) that commits after the sweep listed the hold as expired
    keeps the hold: the DELETE checks the expiry itself, and only what it deleted is
    announced."""
    now = datetime.now(UTC)
    hold, _, _ = holds.place_hold(
        expert_type.id, start_at(), holder_session_key="a" * 64, address="10.0.0.1", now=now
    )
    later = now + holds.HOLD_TTL + timedelta(seconds=1)
    lock = holds.lock_expert_for_booking

    def lock_then_renewed(expert_id):
        locked = lock(expert_id)
        db.session.execute(
            sa.update(Hold).values(expires_at=later + holds.HOLD_TTL)
        )  # as if committed by a renewal just now
        return locked

    monkeypatch.setattr(holds, "lock_expert_for_booking", lock_then_renewed)
    assert holds.sweep_expired(later) == []
    assert db.session.scalars(sa.select(Hold.id)).all() == [hold.id]


def test_an_expired_hold_whose_time_was_booked_is_not_announced_released(any_app, expert_type):
    from tests.booking_fixtures import insert_booking

    now = datetime.now(UTC)
    start = start_at()
    hold, _, _ = holds.place_hold(
        expert_type.id, start, holder_session_key="a" * 64, address="10.0.0.1", now=now
    )
    kept, _, _ = holds.place_hold(
        expert_type.id, start_at(hour=14), holder_session_key="b" * 64, address="10.0.0.2",
        now=now,
    )  # fmt: skip
    insert_booking(expert_type, start + timedelta(minutes=15))  # after the hold expired
    swept = holds.sweep_expired(now + holds.HOLD_TTL + timedelta(seconds=1))
    assert [h.id for h in swept] == [kept.id]
    assert db.session.scalars(sa.select(Hold)).all() == []


def test_a_hold_uses_up_no_booking_id(pg_app, make_user, make_event_type):
    """On PostgreSQL a hold runs the booking's locked read without its nextval (nor its
    idempotency, webhook and calendar questions): bookings around it get consecutive ids."""
    expert = make_user("coach", expert=True)
    set_availability(expert, "UTC", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    event_type = make_event_type(expert, slug="sync", duration_minutes=30)
    client = pg_app.test_client()
    first = book(client, event_type, start_at(hour=9))
    for hour in (10, 11, 12):
        held = client.post(
            f"/api/v1/event-types/{event_type.id}/holds", json={"start": iso(start_at(hour=hour))}
        )
        assert held.status_code == 201
    second = book(client, event_type, start_at(hour=13))
    assert first.status_code == second.status_code == 201
    ids = sorted(db.session.scalars(sa.select(Booking.id)))
    assert ids[1] == ids[0] + 1
