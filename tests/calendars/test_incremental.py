"""A repeat sync reads only what changed, on both databases, against a real Radicale and a
real HTTP feed server: sync tokens, ETags, conditional GETs, a refused token, a wider
window; failures back off; the busy count counts events; the connection limit holds
under concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import caldav
import pytest
import sqlalchemy as sa

from expertbook.calendars import parse_worker, reading, remote, secrets
from expertbook.calendars import sync as calendar_sync
from expertbook.calendars.connections import MAX_CONNECTIONS, connect_calendar
from expertbook.calendars.models import (
    BusyTime,
    CalendarConnection,
    CalendarObject,
    ConnectedCalendar,
)
from expertbook.calendars.queries import busy_count
from expertbook.errors import FieldError
from expertbook.extensions import db
from expertbook.models import User, utcnow
from tests.booking_fixtures import day_ahead
from tests.calendars.test_api import event


@pytest.fixture
def private_ok(any_app):
    any_app.config["ALLOW_PRIVATE_HOSTS"] = True


@pytest.fixture
def reports(monkeypatch) -> list[tuple[bytes, None]]:
    """Every REPORT a sync sends (its body), refused ones included."""
    seen = []
    real = remote.CalDAVAccount.report

    def report(self, calendar_url, body):
        seen.append((body, None))
        return real(self, calendar_url, body)

    monkeypatch.setattr(remote.CalDAVAccount, "report", report)
    return seen


@pytest.fixture
def parsed(monkeypatch) -> list[int]:
    """How many objects each read of an answer held."""
    counts = []
    real = reading.read

    def read(*args, **kwargs):
        got = real(*args, **kwargs)
        counts.append(len(got.objects))
        return got

    monkeypatch.setattr(reading, "read", read)
    return counts


def kinds(reports) -> list[str]:
    names = ("sync-collection", "calendar-multiget", "calendar-query")
    return [next(n for n in names if n.encode() in body) for body, _ in reports]


def busy_starts() -> list:
    return db.session.scalars(sa.select(BusyTime.start_at).order_by(BusyTime.start_at)).all()


def fresh(connection) -> CalendarConnection:
    return db.session.get(CalendarConnection, connection.id, populate_existing=True)


def synced(connection):
    result = calendar_sync.sync_connection(connection.id, now=utcnow())
    assert result is not None and result.connection.status == "ok", result.connection.error
    return result


@pytest.fixture
def calendar(radicale):
    """A Radicale calendar of ten one-hour events, days 2 to 11 at 10:00."""
    url = radicale.make_calendar("Work")
    for day in range(2, 12):
        radicale.add_event(url, event(f"e{day}@example.com", day_ahead(day, 10)))
    return url


@pytest.fixture
def connected(any_app, coach, sync_type, radicale, calendar, private_ok):
    """A connection whose calendar was read whole at the connect, then synced once, which
    took its sync token."""
    connection = connect_calendar(
        coach, "caldav", calendar, radicale.username, radicale.password, now=utcnow()
    )
    synced(connection)
    return connection


def test_a_first_read_is_one_query_for_every_event_and_the_next_sync_takes_the_token(
    any_app, coach, sync_type, radicale, calendar, private_ok, reports, token_asks
):
    """The expert waits on the connect: one calendar-query with no time range (Radicale
    answers it in half the time of one for a window), and no sync token asked for. The
    next sync asks for it and reads by ETag; the one after goes on from the token."""
    far = day_ahead(sync_type.max_days_ahead + 90, 10)
    radicale.add_event(calendar, event("far@example.com", far))
    connection = connect_calendar(
        coach, "caldav", calendar, radicale.username, radicale.password, now=utcnow()
    )
    assert kinds(reports) == ["calendar-query"] and b"time-range" not in reports[0][0]
    assert token_asks == [] and stored_calendar(calendar).sync_token == ""
    assert busy_count(connection.id) == 10 and far not in busy_starts()
    reports.clear()
    radicale.add_event(calendar, event("new@example.com", day_ahead(5, 14)))
    assert synced(connection).changed
    assert token_asks == [(remote.net.CONNECT_TIMEOUT, reading.TOKEN_PATIENCE)]
    assert kinds(reports) == ["calendar-query", "calendar-multiget"]
    assert stored_calendar(calendar).sync_token.startswith("http://radicale")
    reports.clear()
    radicale.add_event(calendar, event("newer@example.com", day_ahead(6, 14)))
    synced(connection)
    assert kinds(reports) == ["sync-collection"] and busy_count(connection.id) == 12


@pytest.mark.parametrize("failure", ["too many events", "answer too large", "damaged"])
def test_a_calendar_that_cannot_be_read_whole_is_read_for_the_window(
    failure, any_app, coach, sync_type, radicale, calendar, private_ok, monkeypatch
):
    """A long past can make the answer for every event too large to read, or hold a
    damaged object: the calendar is read again for the window, and connects."""
    from expertbook.calendars import icstext
    from expertbook.calendars.feeds import FeedError

    radicale.add_event(calendar, event("old@example.com", day_ahead(-400, 10)))
    if failure == "too many events":  # the window holds 10, all 11 (read in this process)
        monkeypatch.setattr(icstext, "MAX_FEED_EVENTS", 10)
    real_report, real_read, sent = remote.CalDAVAccount.report, reading.read, []

    def report(self, url, body):
        sent.append(body)
        if failure == "answer too large" and b"time-range" not in body:
            raise remote.TooLarge("The answer is larger than 30 MB.")
        return real_report(self, url, body)

    def read(kind, answer, **window):
        if failure == "damaged" and b"old@example.com" in answer:
            raise FeedError("The calendar file is damaged: line 8 is not an iCalendar line.")
        return real_read(kind, answer, **window)

    monkeypatch.setattr(remote.CalDAVAccount, "report", report)
    monkeypatch.setattr(reading, "read", read)
    connection = connect_calendar(
        coach, "caldav", calendar, radicale.username, radicale.password, now=utcnow()
    )
    assert [b"time-range" in body for body in sent] == [False, True]
    assert busy_count(connection.id) == 10


def test_a_refused_password_is_not_read_for_the_window(
    any_app, coach, sync_type, radicale, calendar, private_ok, reports, monkeypatch
):
    def report(self, url, body):
        raise remote.RemoteError("The server refused the password (401).", 401)

    monkeypatch.setattr(remote.CalDAVAccount, "report", report)
    with pytest.raises(FieldError):
        connect_calendar(coach, "caldav", calendar, radicale.username, "wrong", now=utcnow())


@pytest.fixture
def sync_type(any_app, sync):
    return sync


@pytest.fixture
def sync_type_plain(app, sync):
    return sync


def test_a_repeat_sync_fetches_and_parses_only_the_changes(
    connected, radicale, calendar, reports, parsed
):
    stored = stored_calendar(calendar)
    assert stored.sync_token and stored.read_until is not None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CalendarObject)) == 10
    with radicale.client() as client:
        third = next(e for e in client.calendar(url=calendar).get_events() if "e3@" in e.data)
        assert client.delete(str(third.url)).status in (200, 204)
    radicale.add_event(calendar, event("new@example.com", day_ahead(5, 14)))
    radicale.add_event(calendar, event("e4@example.com", day_ahead(4, 16)))  # moved
    result = synced(connected)
    assert result.changed
    assert kinds(reports) == ["sync-collection"]
    assert parsed == [2]  # the new one and the moved one; nothing else was parsed
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CalendarObject)) == 10
    starts = busy_starts()
    assert day_ahead(3, 10) not in starts and day_ahead(4, 10) not in starts
    assert day_ahead(4, 16) in starts and day_ahead(5, 14) in starts
    assert busy_count(connected.id) == 10

    reports.clear()
    parsed.clear()
    again = synced(connected)
    assert not again.changed and kinds(reports) == ["sync-collection"] and parsed == [0]


def test_a_refused_token_reads_the_calendar_whole(connected, calendar, reports):
    stored = db.session.scalar(
        sa.select(ConnectedCalendar).where(ConnectedCalendar.url == calendar)
    )
    stored.sync_token = "http://radicale.org/ns/sync/unknown"
    db.session.commit()
    before = busy_starts()
    result = synced(connected)
    assert kinds(reports) == ["sync-collection", "calendar-query"]
    assert not result.changed and busy_starts() == before
    assert stored_calendar(calendar).sync_token == ""  # the next sync takes a new one


def test_without_a_sync_token_etags_say_what_to_fetch(connected, radicale, calendar, reports):
    """A server without RFC 6578 leaves no token: a calendar-query lists the ETags, and only
    the objects whose ETag changed are fetched."""
    stored = db.session.scalar(
        sa.select(ConnectedCalendar).where(ConnectedCalendar.url == calendar)
    )
    stored.sync_token = ""
    db.session.commit()
    radicale.add_event(calendar, event("e6@example.com", day_ahead(6, 15)))  # moved
    result = synced(connected)
    assert result.changed and kinds(reports) == ["calendar-query", "calendar-multiget"]
    listing, _ = reports[0]
    assert b"calendar-data" not in listing  # ETags only
    assert reports[1][0].count(b"<D:href>") + reports[1][0].count(b"<href>") == 1
    assert day_ahead(6, 15) in busy_starts() and day_ahead(6, 10) not in busy_starts()


def test_a_wider_horizon_reads_the_calendar_whole_and_is_due_at_once(
    connected, radicale, calendar, sync_type, reports
):
    far = day_ahead(sync_type.max_days_ahead + 60, 10)
    radicale.add_event(calendar, event("far@example.com", far))
    synced(connected)
    assert far not in busy_starts()
    reports.clear()
    sync_type.max_days_ahead += 90
    db.session.commit()
    assert fresh(connected).next_sync_at <= utcnow()
    synced(connected)
    assert "calendar-query" in kinds(reports) and far in busy_starts()


def test_a_change_of_zone_makes_the_sync_due_at_once(any_app, connected, coach):
    db.session.get(CalendarConnection, connected.id).next_sync_at = utcnow() + timedelta(hours=1)
    db.session.commit()
    coach.timezone = "Asia/Tokyo"
    db.session.commit()
    assert fresh(connected).next_sync_at <= utcnow()


def test_an_unchanged_feed_is_neither_downloaded_nor_parsed(
    any_app, coach, sync_type, http_server, private_ok, parsed
):
    url = http_server.route("/cal.ics", event("a@example.com", day_ahead(3, 10)))
    http_server["/cal.ics"].etag = '"v1"'
    connection = connect_calendar(coach, "ics", url, now=utcnow())
    assert parsed == [1]
    synced(connection)
    assert http_server["/cal.ics"].not_modified == 1 and parsed == [1]
    http_server["/cal.ics"].etag = None  # a server without validators: the same body again
    synced(connection)
    assert parsed == [1]
    http_server.route("/cal.ics", event("a@example.com", day_ahead(3, 12)))
    assert synced(connection).changed and parsed == [1, 1]
    assert busy_starts() == [day_ahead(3, 12)]


def test_busy_count_counts_events_not_pieces(any_app, coach, sync_type, http_server, private_ok):
    trip = event("trip@example.com", day_ahead(3, 8), minutes=3 * 24 * 60)  # five pieces
    url = http_server.route("/cal.ics", trip)
    connection = connect_calendar(coach, "ics", url, now=utcnow())
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BusyTime)) > 1
    assert busy_count(connection.id) == 1


def test_a_refused_password_is_an_error_and_backs_off_for_hours(connected):
    connection = db.session.get(CalendarConnection, connected.id)
    connection.secret = secrets.encrypt("not the password")
    db.session.commit()
    waits = []
    for _ in range(3):
        now = utcnow()
        result = calendar_sync.sync_connection(connected.id, now=now)
        assert result.connection.status == "error" and "401" in result.connection.error
        waits.append(result.connection.next_sync_at - now)
    assert waits[0] >= timedelta(hours=1) and waits[1] >= 2 * waits[0] - timedelta(seconds=1)
    assert db.session.get(CalendarConnection, connected.id).failures == 3
    assert busy_starts()  # the last good busy times keep blocking


def test_a_passing_failure_retries_soon_and_a_success_resets(
    any_app, coach, sync_type, http_server, private_ok
):
    url = http_server.route("/cal.ics", event("a@example.com", day_ahead(3, 10)))
    connection = connect_calendar(coach, "ics", url, now=utcnow())
    http_server.route("/cal.ics", "", status=503)
    now = utcnow()
    result = calendar_sync.sync_connection(connection.id, now=now)
    assert result.connection.status == "error"
    assert result.connection.next_sync_at - now <= calendar_sync.sync_every()
    http_server.route("/cal.ics", event("a@example.com", day_ahead(3, 10)))
    assert synced(connection).connection.failures == 0


def test_two_connects_at_once_cannot_pass_the_limit(
    any_app, coach, sync_type, http_server, private_ok
):
    url = http_server.route("/slow.ics", event("a@example.com", day_ahead(3, 10)), delay=0.5)
    for n in range(MAX_CONNECTIONS - 1):
        db.session.add(CalendarConnection(expert_id=coach.id, kind="ics", url=f"{url}?{n}"))
    db.session.commit()
    outcomes, coach_id = [], coach.id

    def connect():
        with any_app.app_context():
            expert = db.session.get(User, coach_id)
            try:
                connect_calendar(expert, "ics", url, now=utcnow())
                outcomes.append("connected")
            except FieldError as error:
                outcomes.append(error.message)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=connect) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [f"At most {MAX_CONNECTIONS} calendar connections.", "connected"]
    count = sa.select(sa.func.count()).select_from(CalendarConnection)
    assert db.session.scalar(count) == MAX_CONNECTIONS


def test_the_dashboard_says_when_a_failed_calendar_is_tried_again(
    app, auth, client, coach, sync_type_plain, radicale, calendar
):
    app.config["ALLOW_PRIVATE_HOSTS"] = True
    connection = connect_calendar(
        coach, "caldav", calendar, radicale.username, radicale.password, now=utcnow()
    )
    connection.secret = secrets.encrypt("not the password")
    db.session.commit()
    calendar_sync.sync_connection(connection.id, now=utcnow())
    auth.login("coach")
    page = client.get("/dashboard/calendars").text
    assert "401" in page and "Next try" in page and "still block" in page


def test_a_token_slow_to_come_is_read_without_and_asked_for_next_time(
    any_app, coach, sync_type, radicale, calendar, private_ok, reports, monkeypatch
):
    """Radicale asked for the first time for a big calendar's sync token writes its sync
    history first (seconds): a sync does not wait past TOKEN_PATIENCE, reads by ETag, and
    the next sync asks again and goes on from that token."""
    import caldav
    from niquests.exceptions import ReadTimeout

    real = caldav.DAVClient.propfind
    waits = []

    def propfind(self, url=None, props=None, depth=0):
        if props == ["{DAV:}sync-token"]:
            waits.append(self.timeout)
            if len(waits) == 1:
                raise ReadTimeout("the server is writing its sync history")
        return real(self, url, props=props, depth=depth)

    monkeypatch.setattr(caldav.DAVClient, "propfind", propfind)
    connection = connect_calendar(
        coach, "caldav", calendar, radicale.username, radicale.password, now=utcnow()
    )
    assert waits == []  # a first read does not ask
    radicale.add_event(calendar, event("new@example.com", day_ahead(5, 14)))
    reports.clear()
    synced(connection)
    assert waits == [(remote.net.CONNECT_TIMEOUT, reading.TOKEN_PATIENCE)]
    assert kinds(reports) == ["calendar-query", "calendar-multiget"]
    assert stored_calendar(calendar).sync_token == "" and busy_count(connection.id) == 11
    reports.clear()
    synced(connection)
    assert waits[1] == (remote.net.CONNECT_TIMEOUT, reading.TOKEN_PATIENCE)
    assert kinds(reports) == ["calendar-query"]  # nothing changed: nothing fetched
    assert stored_calendar(calendar).sync_token.startswith("http://radicale")
    reports.clear()
    radicale.add_event(calendar, event("newer@example.com", day_ahead(6, 14)))
    synced(connection)
    assert kinds(reports) == ["sync-collection"] and busy_count(connection.id) == 12


def stored_calendar(url) -> ConnectedCalendar:
    return db.session.scalar(
        sa.select(ConnectedCalendar).where(ConnectedCalendar.url == url),
        execution_options={"populate_existing": True},
    )


@pytest.fixture
def token_asks(monkeypatch) -> list:
    """The read timeout of each PROPFIND for a sync token; `token_asks.answer` sets what the
    server does: "token" (Radicale's own answer), "none" (a 207 without the property, as a
    server without RFC 6578 answers), or an exception to raise."""
    real = caldav.DAVClient.propfind
    asks = TokenAsks()

    def propfind(self, url=None, props=None, depth=0):
        if props == ["{DAV:}sync-token"]:
            asks.append(self.timeout)
            if isinstance(asks.answer, Exception):
                raise asks.answer
            if asks.answer == "none":
                props = ["{DAV:}getcontentlanguage"]  # a property Radicale does not have
        return real(self, url, props=props, depth=depth)

    monkeypatch.setattr(caldav.DAVClient, "propfind", propfind)
    return asks


class TokenAsks(list):
    answer: str | Exception = "token"


def test_a_server_without_sync_tokens_is_asked_for_one_once_a_day_not_every_sync(
    any_app, coach, sync_type, radicale, calendar, private_ok, reports, token_asks
):
    token_asks.answer = "none"
    connection = connect_calendar(
        coach, "caldav", calendar, radicale.username, radicale.password, now=utcnow()
    )
    assert token_asks == [] and stored_calendar(calendar).sync_token == ""
    for n in range(2):  # read by ETag, asking once
        radicale.add_event(calendar, event(f"new{n}@example.com", day_ahead(5 + n, 14)))
        reports.clear()
        synced(connection)
        assert kinds(reports) == ["calendar-query", "calendar-multiget"]
        assert busy_count(connection.id) == 11 + n
    assert len(token_asks) == 1
    assert stored_calendar(calendar).sync_modified.startswith(reading.NO_TOKEN)
    sync_type.max_days_ahead += 90  # read whole again: what the server said is kept
    db.session.commit()
    synced(connection)
    assert len(token_asks) == 1
    assert stored_calendar(calendar).sync_modified.startswith(reading.NO_TOKEN)
    # A day on, it is asked again (it may have learnt sync tokens meanwhile).
    stored = stored_calendar(calendar)
    said = utcnow() - reading.ASK_TOKEN_AGAIN - timedelta(minutes=1)
    stored.sync_modified = reading.NO_TOKEN + said.isoformat(timespec="seconds")
    db.session.commit()
    token_asks.answer = "token"
    synced(connection)
    assert token_asks[1:] == [(remote.net.CONNECT_TIMEOUT, reading.TOKEN_PATIENCE)]
    stored = stored_calendar(calendar)
    assert stored.sync_token.startswith("http://radicale") and stored.sync_modified == ""
    reports.clear()
    synced(connection)
    assert kinds(reports) == ["sync-collection"] and len(token_asks) == 2


def test_a_failed_token_request_does_not_fail_the_sync(
    connected, radicale, calendar, reports, token_asks
):
    """The token is optional: a broken connection (or any failure) asking for it reads the
    calendar by ETag all the same, waits at most TOKEN_PATIENCE, and asks again next time."""
    from niquests.exceptions import ConnectionError as Broken

    stored = stored_calendar(calendar)
    stored.sync_token = ""
    db.session.commit()
    token_asks.answer = Broken("connection reset by peer")
    radicale.add_event(calendar, event("e6@example.com", day_ahead(6, 15)))  # moved
    assert synced(connected).changed
    assert token_asks == [(remote.net.CONNECT_TIMEOUT, reading.TOKEN_PATIENCE)]
    assert kinds(reports) == ["calendar-query", "calendar-multiget"]
    assert day_ahead(6, 15) in busy_starts() and day_ahead(6, 10) not in busy_starts()
    assert stored_calendar(calendar).sync_modified == ""  # not taken for "it has none"
    token_asks.answer = "token"
    synced(connected)
    assert len(token_asks) == 2 and stored_calendar(calendar).sync_token


@pytest.fixture
def warmed(monkeypatch) -> list[None]:
    """Each time a read started the parsing child early."""
    calls = []
    real = parse_worker.warm
    monkeypatch.setattr(parse_worker, "warm", lambda: calls.append(None) or real())
    return calls


def test_only_a_whole_read_starts_the_parsing_child_early(
    connected, radicale, calendar, sync_type, http_server, coach, warmed
):
    """A read of what changed is small and read in place: it does not start a child that
    would then sit idle in the process for good."""
    parse_worker._child.stop()
    radicale.add_event(calendar, event("new@example.com", day_ahead(5, 14)))
    synced(connected)  # sync-collection
    stored = stored_calendar(calendar)
    stored.sync_token = ""
    db.session.commit()
    synced(connected)  # by ETag
    assert warmed == [] and parse_worker._child.process is None
    url = http_server.route("/cal.ics", event("a@example.com", day_ahead(3, 10)))
    http_server["/cal.ics"].etag = '"v1"'
    feed = connect_calendar(coach, "ics", url, now=utcnow())
    assert len(warmed) == 1  # the feed's first read
    parse_worker._child.stop()
    synced(feed)  # 304
    assert http_server["/cal.ics"].not_modified == 1
    assert warmed == [None] and parse_worker._child.process is None
    sync_type.max_days_ahead += 90  # a wider window: read whole, with the child started
    db.session.commit()
    synced(connected)
    assert len(warmed) == 2
