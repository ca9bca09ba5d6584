"""Sync operations on both databases: one sync per connection at a time (the lease), due
times spread, a dead sync's lease runs out, horizons follow the event types."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from expertbook.calendars import sync as calendar_sync
from expertbook.calendars.connections import connect_calendar
from expertbook.calendars.models import BusyTime, CalendarConnection
from expertbook.extensions import db
from expertbook.models import User, utcnow
from tests.booking_fixtures import day_ahead
from tests.calendars.test_api import event


@pytest.fixture
def feed(any_app, coach, sync, http_server):
    """The coach with an ICS feed connected (one busy hour)."""
    any_app.config["ALLOW_PRIVATE_HOSTS"] = True
    url = http_server.route("/cal.ics", event("a@example.com", day_ahead(3, 10)))
    connection = connect_calendar(coach, "ics", url, now=utcnow())
    return connection


def test_two_syncs_at_once_read_the_feed_once(any_app, feed, http_server):
    http_server.route("/cal.ics", event("a@example.com", day_ahead(3, 12)), delay=1.0)
    results = []

    def run():
        with any_app.app_context():
            results.append(calendar_sync.sync_connection(feed.id, now=utcnow()))
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r is None for r in results) == [False, True]  # one ran, one found it held
    assert http_server["/cal.ics"].hits == 1
    done = next(r for r in results if r is not None)
    assert done.changed and done.connection.sync_lease_until is None


def test_a_lease_left_by_a_dead_sync_runs_out(feed, http_server):
    now = utcnow()
    feed.sync_lease_until = now + timedelta(minutes=1)  # a process died mid-sync
    db.session.commit()
    assert calendar_sync.sync_connection(feed.id, now=now) is None
    later = now + timedelta(minutes=2)
    assert calendar_sync.sync_connection(feed.id, now=later) is not None


def test_due_only_waits_for_the_due_time_and_the_next_is_spread(any_app, feed):
    now = utcnow()
    every = calendar_sync.sync_every()
    assert now + every * 0.79 < feed.next_sync_at < now + every * 1.21
    assert calendar_sync.sync_connection(feed.id, now=now, due_only=True) is None
    assert calendar_sync.due_connections(now) == []
    later = feed.next_sync_at + timedelta(seconds=1)
    assert calendar_sync.due_connections(later) == [feed.id]
    result = calendar_sync.sync_connection(feed.id, now=later, due_only=True)
    assert result is not None and not result.changed  # same feed: nothing written
    assert result.connection.next_sync_at > later + every * 0.79


def test_an_unchanged_feed_leaves_the_schedule_version_alone(feed, coach):
    before = db.session.get(User, coach.id, populate_existing=True).schedule_version
    result = calendar_sync.sync_connection(feed.id, now=utcnow())
    assert result is not None and not result.changed
    assert db.session.get(User, coach.id, populate_existing=True).schedule_version == before


def test_the_window_follows_the_longest_horizon_at_most_a_year(any_app, coach, sync,
                                                                make_event_type):  # fmt: skip
    now = utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = calendar_sync.window(coach.id, now)
    assert end == today + timedelta(days=sync.max_days_ahead + 2)
    assert calendar_sync.window(coach.id, now + timedelta(hours=1)) == (start, end) or (
        now.hour == 23  # the hour crossed midnight
    )
    make_event_type(coach, slug="far", max_days_ahead=3650)
    _, end = calendar_sync.window(coach.id, now)
    assert end == today + timedelta(days=calendar_sync.MAX_HORIZON_DAYS + 2)
    assert start < now


def test_busy_times_beyond_the_window_are_not_stored(any_app, coach, sync, http_server):
    any_app.config["ALLOW_PRIVATE_HOSTS"] = True
    far = day_ahead(sync.max_days_ahead + 10, 10)
    url = http_server.route("/far.ics", event("far@example.com", far))
    connect_calendar(coach, "ics", url, now=utcnow())
    assert db.session.query(BusyTime).count() == 0
    assert db.session.query(CalendarConnection).count() == 1


def test_an_unchanged_long_event_is_not_rewritten_later_the_same_day(any_app, coach, sync,
                                                                       http_server):  # fmt: skip
    """Found in review: the window moved with `now`, so a trip that began yesterday clipped
    differently each sync and was rewritten (cache flushed, pages told) every pass."""
    any_app.config["ALLOW_PRIVATE_HOSTS"] = True
    now = utcnow().replace(hour=10, minute=0, second=0, microsecond=0)
    trip = now - timedelta(hours=20)
    url = http_server.route("/trip.ics", event("trip@example.com", trip, minutes=3 * 24 * 60))
    connection = connect_calendar(coach, "ics", url, now=now)
    for minutes in (5, 10, 15):
        result = calendar_sync.sync_connection(connection.id, now=now + timedelta(minutes=minutes))
        assert result is not None and not result.changed


def test_a_sync_that_outlived_its_lease_writes_nothing(any_app, feed, http_server, monkeypatch):
    """Found in review: a slow sync whose lease ran out overwrote a newer sync's result."""
    now = utcnow()
    later = now + calendar_sync.SYNC_LEASE + timedelta(seconds=1)
    real_read = calendar_sync.read_remote
    reads = []

    def slow_read(*args, **kwargs):
        reads.append(1)
        fetched = real_read(*args, **kwargs)
        if len(reads) == 1:
            # While this read is slow, its lease runs out and another sync reads newer data.
            http_server.route("/cal.ics", event("a@example.com", day_ahead(3, 14)))
            assert calendar_sync.sync_connection(feed.id, now=later).changed
        return fetched

    monkeypatch.setattr(calendar_sync, "read_remote", slow_read)
    http_server.route("/cal.ics", event("a@example.com", day_ahead(3, 12)))
    result = calendar_sync.sync_connection(feed.id, now=now)
    assert result is not None and not result.changed
    assert db.session.scalars(sa.select(BusyTime.start_at)).all() == [day_ahead(3, 14)]


def calendar_of(*events: tuple[str, object]) -> str:
    """One VCALENDAR of one-hour events: (uid, start) each."""
    bodies = [event(uid, start).split("BEGIN:VEVENT")[1].split("END:VEVENT")[0] for uid, start
              in events]  # fmt: skip
    head = event("x", day_ahead(1, 1)).split("BEGIN:VEVENT")[0]
    return head + "".join(f"BEGIN:VEVENT{b}END:VEVENT\r\n" for b in bodies) + "END:VCALENDAR\r\n"


def test_the_experts_own_bookings_are_skipped_but_not_ones_they_made_elsewhere(
    any_app, coach, sync, make_user, make_event_type, http_server
):
    """A booking written back must not block itself; a booking the expert made as a client
    with another expert (its invitation in their calendar) must block them."""
    from expertbook.ics import booking_uid
    from tests.booking_fixtures import insert_booking

    any_app.config["ALLOW_PRIVATE_HOSTS"] = True
    base = any_app.config["BASE_URL"]
    own = insert_booking(sync, day_ahead(3, 10))
    other = make_user("other", expert=True)
    theirs = insert_booking(make_event_type(other, slug="x"), day_ahead(3, 14))
    url = http_server.route(
        "/own.ics",
        calendar_of(*((booking_uid(b.uid, base), b.start_at) for b in (own, theirs))),
    )
    connect_calendar(coach, "ics", url, now=utcnow())
    assert db.session.scalars(sa.select(BusyTime.start_at)).all() == [day_ahead(3, 14)]
