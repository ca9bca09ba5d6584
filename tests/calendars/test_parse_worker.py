"""Large calendars are parsed in a child process, with the same answer as in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from expertbook.calendars import parse_worker
from expertbook.calendars.feeds import FeedError, busy_times

START = datetime(2030, 3, 1, tzinfo=UTC)
END = START + timedelta(days=60)
OWN = frozenset({"0123456789abcdef01234567@testserver"})
OPTIONS = dict(start=START, end=END, default_tz="Europe/Berlin", own_uids=OWN)


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


def test_a_large_calendar_is_parsed_in_a_child_with_the_same_answer(monkeypatch):
    data = big_feed()
    assert len(data) > parse_worker.IN_PLACE_BYTES
    in_place = busy_times(
        data, start=START, end=END, default_tz="Europe/Berlin", is_own_uid=OWN.__contains__
    )
    calls = []
    real_run = parse_worker.subprocess.run
    monkeypatch.setattr(
        parse_worker.subprocess, "run", lambda *a, **k: calls.append(a) or real_run(*a, **k)
    )
    assert parse_worker.parse(data, **OPTIONS) == in_place
    assert len(calls) == 1  # it did go to a child
    assert in_place and START + timedelta(hours=12) not in [i.start for i in in_place]


def test_a_small_calendar_without_rules_is_parsed_in_place(monkeypatch):
    monkeypatch.setattr(parse_worker.subprocess, "run", None)  # would fail if called
    data = big_feed(events=3).replace(b"RRULE:FREQ=WEEKLY\r\n", b"")
    assert parse_worker.parse([data], **OPTIONS)


def test_a_small_calendar_with_a_rule_goes_to_a_child(monkeypatch):
    """A few bytes of RRULE can cost seconds of expansion: never on the server's loop."""
    calls = []
    real_run = parse_worker.subprocess.run
    monkeypatch.setattr(
        parse_worker.subprocess, "run", lambda *a, **k: calls.append(a) or real_run(*a, **k)
    )
    assert parse_worker.parse(big_feed(events=3), **OPTIONS)
    assert len(calls) == 1


def test_the_childs_feed_error_comes_back_in_words():
    junk = b"<html>" + b"x" * parse_worker.IN_PLACE_BYTES + b"</html>"
    with pytest.raises(FeedError) as error:
        parse_worker.parse(junk, **OPTIONS)
    assert "web page" in error.value.message


def test_a_child_out_of_time_is_a_feed_error(monkeypatch):
    monkeypatch.setattr(parse_worker, "TIMEOUT", 0.01)
    with pytest.raises(FeedError) as error:
        parse_worker.parse(big_feed(), **OPTIONS)
    assert "too long" in error.value.message
