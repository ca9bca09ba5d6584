"""Large calendars are parsed in a child process, with the same answer as in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from expertbook.calendars import parse_worker
from expertbook.calendars.feeds import FeedError, busy_times

START = datetime(2030, 3, 1, tzinfo=UTC)
END = START + timedelta(days=60)
OWN = frozenset({"0123456789abcdef01234567@testserver"})
OPTIONS = dict(start=START, end=END, default_tz="Europe/Berlin")


def big_feed(events: int = 2500) -> bytes:
    """A feed over IN_PLACE_BYTES: single events, a weekly series, and one of our own."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//EN"]
    for n in range(events):
        start = START + timedelta(hours=7 * n)
        lines += [
            "BEGIN:VEVENT",
            f"UID:event-{n}@example.com",
            "DTSTAMP:20300101T000000Z",
            f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
            f"DTEND:{start + timedelta(minutes=45):%Y%m%dT%H%M%SZ}",
            f"SUMMARY:Event number {n} with a title long enough to look real",
            "END:VEVENT",
        ]
    lines += [
        "BEGIN:VEVENT",
        "UID:weekly@example.com",
        "DTSTAMP:20300101T000000Z",
        "DTSTART;TZID=Europe/Berlin:20300104T060000",
        "DTEND;TZID=Europe/Berlin:20300104T063000",
        "RRULE:FREQ=WEEKLY",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:0123456789abcdef01234567@testserver",
        "DTSTAMP:20300101T000000Z",
        "DTSTART:20300302T120000Z",
        "DTEND:20300302T130000Z",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def merged_busy(got: parse_worker.Read, own=OWN) -> list[tuple[datetime, datetime]]:
    """The busy times of everything read but our own bookings, merged as busy_times does."""
    pairs = sorted(pair for o in got.objects if o.uid not in own for pair in o.pairs())
    merged = []
    for first, last in pairs:
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)) for a, b in merged]


def spy_on_children(monkeypatch) -> list:
    calls = []
    real = parse_worker._in_child
    monkeypatch.setattr(parse_worker, "_in_child", lambda *a: calls.append(a) or real(*a))
    return calls


def in_place_only(monkeypatch) -> None:
    def refuse(*args):
        raise AssertionError("went to the child")

    monkeypatch.setattr(parse_worker, "_in_child", refuse)


def test_a_large_calendar_is_parsed_in_a_child_with_the_same_answer(monkeypatch):
    data = big_feed()
    assert len(data) > parse_worker.IN_PLACE_BYTES
    in_place = busy_times(
        data, start=START, end=END, default_tz="Europe/Berlin", is_own_uid=OWN.__contains__
    )
    calls = spy_on_children(monkeypatch)
    got = parse_worker.read(parse_worker.FEED, data, **OPTIONS)
    assert merged_busy(got) == [(i.start, i.end) for i in in_place]
    assert len(calls) == 1  # it did go to a child
    assert in_place and START + timedelta(hours=12) not in [i.start for i in in_place]
    # One object per event (UID): the series is one, with all its occurrences.
    weekly = next(o for o in got.objects if o.uid == "weekly@example.com")
    assert weekly.href == "weekly@example.com" and len(weekly.pairs()) == 9


def test_a_small_calendar_without_rules_is_parsed_in_place(monkeypatch):
    in_place_only(monkeypatch)
    data = big_feed(events=3).replace(b"RRULE:FREQ=WEEKLY\r\n", b"")
    assert parse_worker.read(parse_worker.FEED, data, **OPTIONS).objects


def test_a_small_calendar_with_a_rule_goes_to_a_child(monkeypatch):
    """A few bytes of RRULE can cost seconds of expansion: never on the server's loop."""
    calls = spy_on_children(monkeypatch)
    assert parse_worker.read(parse_worker.FEED, big_feed(events=3), **OPTIONS).objects
    assert len(calls) == 1


def multistatus(*responses: str, token: str = "") -> bytes:
    sync = f"<D:sync-token>{token}</D:sync-token>" if token else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        + "".join(responses)
        + sync
        + "</D:multistatus>"
    ).encode()


def found(href: str, etag: str, data: str | None = None) -> str:
    body = f"<C:calendar-data>{data}</C:calendar-data>" if data is not None else ""
    return (
        f"<D:response><D:href>{href}</D:href><D:propstat><D:prop>"
        f"<D:getetag>{etag}</D:getetag>{body}</D:prop>"
        "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
    )


def gone(href: str) -> str:
    status = "<D:status>HTTP/1.1 404 Not Found</D:status>"
    return f"<D:response><D:href>{href}</D:href>{status}</D:response>"


@pytest.mark.parametrize("in_child", [False, True])
def test_a_caldav_answer_is_read_object_by_object(in_child, monkeypatch):
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n"
    one = head + big_feed(events=1).decode().split(head)[1].split("BEGIN:VEVENT\r\nUID:weekly")[0]
    one += "END:VCALENDAR\r\n"
    weekly = big_feed(events=0).decode().split("BEGIN:VEVENT\r\nUID:0123")[0] + "END:VCALENDAR\r\n"
    answer = multistatus(
        found("/cal/one.ics", '"e1"', one),
        found("/cal/weekly.ics", '"e2"', weekly),
        found("/cal/listed.ics", '"e3"'),
        gone("/cal/removed.ics"),
        token="http://example.com/sync/2",
    )
    if in_child:
        calls = spy_on_children(monkeypatch)
    else:  # without recurrence rules, a small answer is read in place
        answer = answer.replace(b"RRULE:FREQ=WEEKLY\r\n", b"")
        in_place_only(monkeypatch)
    got = parse_worker.read(parse_worker.SYNC, answer, **OPTIONS)
    by_href = {o.href: o for o in got.objects}
    assert sorted(by_href) == ["/cal/one.ics", "/cal/weekly.ics"]
    assert by_href["/cal/one.ics"].etag == '"e1"' and len(by_href["/cal/one.ics"].pairs()) == 1
    # Out of the window without its rule: kept (with its ETag), holding no busy time.
    assert by_href["/cal/weekly.ics"].uid == ("weekly@example.com" if in_child else "")
    assert got.listed == {"/cal/listed.ics": '"e3"'}
    assert got.removed == ["/cal/removed.ics"]
    assert got.token == "http://example.com/sync/2"
    assert len(by_href["/cal/weekly.ics"].pairs()) == (9 if in_child else 0)
    assert not in_child or len(calls) == 1


def test_an_answer_that_is_not_xml_is_a_feed_error():
    with pytest.raises(FeedError) as error:
        parse_worker.read(parse_worker.QUERY, b"<html>Sign in</html", **OPTIONS)
    assert "not CalDAV" in error.value.message


def test_the_childs_feed_error_comes_back_in_words():
    junk = b"<html>" + b"x" * parse_worker.IN_PLACE_BYTES + b"</html>"
    with pytest.raises(FeedError) as error:
        parse_worker.read(parse_worker.FEED, junk, **OPTIONS)
    assert "web page" in error.value.message


def test_a_child_out_of_time_is_a_feed_error_and_the_next_job_gets_a_new_child(monkeypatch):
    monkeypatch.setattr(parse_worker, "TIMEOUT", 0.01)
    with pytest.raises(FeedError) as error:
        parse_worker.read(parse_worker.FEED, big_feed(), **OPTIONS)
    assert "too long" in error.value.message
    monkeypatch.setattr(parse_worker, "TIMEOUT", 60.0)
    assert parse_worker.read(parse_worker.FEED, big_feed(events=3), **OPTIONS).objects


def test_the_child_serves_one_job_after_another():
    parse_worker.read(parse_worker.FEED, big_feed(events=3), **OPTIONS)
    child = parse_worker._child.process
    for events in (3, 4):
        assert parse_worker.read(parse_worker.FEED, big_feed(events=events), **OPTIONS).objects
    assert parse_worker._child.process is child and child.poll() is None


def test_a_dead_child_is_replaced():
    parse_worker.read(parse_worker.FEED, big_feed(events=3), **OPTIONS)
    parse_worker._child.process.kill()
    parse_worker._child.process.wait()
    assert parse_worker.read(parse_worker.FEED, big_feed(events=3), **OPTIONS).objects


def test_warm_starts_the_child_that_the_next_read_uses():
    parse_worker._child.stop()
    parse_worker.warm()
    child = parse_worker._child.process
    assert child is not None and child.poll() is None
    parse_worker.warm()  # one is enough
    assert parse_worker._child.process is child
    assert parse_worker.read(parse_worker.FEED, big_feed(events=3), **OPTIONS).objects
    assert parse_worker._child.process is child


def test_warm_leaves_a_child_at_work_alone():
    parse_worker.warm()
    child = parse_worker._child.process
    with parse_worker._child.lock:
        parse_worker._child.process = None  # as if a job were replacing it
        parse_worker.warm()
        assert parse_worker._child.process is None
        parse_worker._child.process = child


def many_objects(count: int) -> bytes:
    """A calendar-query answer of `count` objects: one-off events, with every third a
    weekly series (nine occurrences in the window) and every fifth out of the window."""
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n"
    responses = []
    for n in range(count):
        start = START + timedelta(days=400 if n % 5 == 0 else 0, hours=5 * n)
        lines = [f"UID:object-{n}@example.com", "DTSTAMP:20300101T000000Z"]
        if n % 3 == 0:
            lines += [
                f"DTSTART;TZID=Europe/Berlin:20300104T{n % 20:02d}0000",
                f"DTEND;TZID=Europe/Berlin:20300104T{n % 20:02d}3000",
                "RRULE:FREQ=WEEKLY",
            ]
        else:
            lines += [
                f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
                f"DTEND:{start + timedelta(minutes=45):%Y%m%dT%H%M%SZ}",
            ]
        data = (
            head + "BEGIN:VEVENT\r\n" + "\r\n".join(lines) + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        responses.append(found(f"/cal/{n}.ics", f'"e{n}"', data))
    return multistatus(*responses)


JOB = {"kind": parse_worker.QUERY, "start": START.isoformat(), "end": END.isoformat(),
       "default_tz": "Europe/Berlin"}  # fmt: skip


# The child forks with no eventlet imported and no threads; this test process has both, and
# eventlet (and Python 3.12 and later) warn.
in_a_forking_test = pytest.mark.filterwarnings(
    r"ignore:Using fork\(\) is a bad idea", r"ignore:.*multi-threaded, use of fork"
)


@pytest.fixture
def forks(monkeypatch) -> list[None]:
    """Each fork of a sibling to read half an answer."""
    import os

    calls, real = [], os.fork
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # two cores, always
    monkeypatch.setattr(os, "fork", lambda: calls.append(None) or real())
    return calls


@in_a_forking_test
def test_a_large_caldav_answer_is_read_in_two_processes_with_the_same_answer(forks):
    answer = many_objects(parse_worker.SPLIT_OBJECTS + 1)
    alone = parse_worker._read(JOB, answer)
    assert forks == []
    both = parse_worker._read(JOB, answer, split=True)
    assert forks == [None] and both == alone
    busy = [o for o in both["objects"] if o[3]]
    assert len(both["objects"]) == parse_worker.SPLIT_OBJECTS + 1
    assert 0 < len(busy) < len(both["objects"])  # the far ones hold none
    assert any(len(o[3].split()) == 9 for o in busy)  # a series, whole
    # The same from the child, which splits it where it has two cores.
    from_child = parse_worker.read(parse_worker.QUERY, answer, **OPTIONS).objects
    assert [list(vars(o).values()) for o in from_child] == alone["objects"]
    # A smaller answer is not worth a fork.
    parse_worker._read(JOB, many_objects(parse_worker.SPLIT_OBJECTS - 1), split=True)
    assert forks == [None]


# Lowered limits, each set to three quarters of what the answer below uses: some only
# the two parts together pass, some each part does; with bytes or events past theirs, the
# answer is not split at all.
LIMITS = [
    ("MAX_OCCURRENCES",),
    ("MAX_RULE_STEPS",),
    ("MAX_FEED_EVENTS",),
    ("MAX_FEED_BYTES",),
    ("MAX_FEED_BYTES", "MAX_RULE_STEPS"),
    ("MAX_FEED_EVENTS", "MAX_OCCURRENCES"),
    ("MAX_RULE_STEPS", "MAX_OCCURRENCES"),
]
_USED = {"MAX_OCCURRENCES": "occurrences", "MAX_RULE_STEPS": "steps",
         "MAX_FEED_EVENTS": "events", "MAX_FEED_BYTES": "bytes"}  # fmt: skip


@in_a_forking_test
@pytest.mark.parametrize("limits", LIMITS, ids="+".join)
def test_past_a_limit_the_error_is_the_one_of_one_process(limits, forks, monkeypatch):
    from expertbook.calendars import feeds, icstext

    answer = many_objects(parse_worker.SPLIT_OBJECTS + 1)
    tally = feeds.Tally()
    listing = parse_worker.davxml.read_listing(answer, sync=False)
    feeds.busy_by_object([o.data.encode() for o in listing.objects], by="file", tally=tally,
                         **OPTIONS)  # fmt: skip
    for limit in limits:
        lowered = getattr(tally, _USED[limit]) * 3 // 4
        for module in (feeds, icstext):
            if hasattr(module, limit):
                monkeypatch.setattr(module, limit, lowered)
    alone = parse_worker._read(JOB, answer)
    both = parse_worker._read(JOB, answer, split=True)
    assert "error" in alone and both == alone
    split = not {"MAX_FEED_BYTES", "MAX_FEED_EVENTS"} & set(limits)
    assert forks == ([None] if split else [])


@in_a_forking_test
def test_a_sibling_that_dies_leaves_the_child_to_read_alone(forks, monkeypatch):
    """A sibling killed (its memory limit, its alarm) leaves no answer: the child reads
    the whole answer itself."""
    import os

    real = parse_worker._busy_of_files

    def busy_of_files(files, window, tally):
        if os.getpid() != parent:
            os._exit(9)
        return real(files, window, tally)

    parent = os.getpid()
    answer = many_objects(parse_worker.SPLIT_OBJECTS + 1)
    alone = parse_worker._read(JOB, answer)
    monkeypatch.setattr(parse_worker, "_busy_of_files", busy_of_files)
    assert parse_worker._read(JOB, answer, split=True) == alone and forks == [None]


def test_the_child_goes_on_after_a_split_read():
    """The sibling never writes to the child's pipes: the next job gets its own answer from
    the same child."""
    parse_worker._child.stop()
    answer = many_objects(parse_worker.SPLIT_OBJECTS + 1)
    first = parse_worker.read(parse_worker.QUERY, answer, **OPTIONS)
    pid = parse_worker._child.process.pid
    small = many_objects(3).replace(b"RRULE:FREQ=WEEKLY", b"RRULE:FREQ=DAILY")
    second = parse_worker.read(parse_worker.QUERY, small, **OPTIONS)
    assert parse_worker._child.process.pid == pid
    assert len(first.objects) == parse_worker.SPLIT_OBJECTS + 1 and len(second.objects) == 3
