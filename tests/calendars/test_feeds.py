"""busy_times: iCalendar bytes in, busy UTC intervals out. The .ics files in feeds/ are
modelled on real Google, Outlook, Apple and Fastmail exports."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from expertbook.calendars import feeds, icstext
from expertbook.calendars.feeds import (
    MAX_FEED_BYTES,
    MAX_FEED_EVENTS,
    FeedError,
    busy_by_object,
    busy_times,
)
from expertbook.scheduling import Interval

FEEDS = Path(__file__).parent / "feeds"


def utc(text: str) -> datetime:
    """'2026-03-05 14:00' as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def spans(*pairs: tuple[str, str]) -> list[Interval]:
    return [Interval(utc(start), utc(end)) for start, end in pairs]


def ics(*lines: str) -> bytes:
    """A calendar of the given lines, CRLF as the RFC wants."""
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", *lines, "END:VCALENDAR", ""]).encode()


def event(uid: str, *lines: str) -> list[str]:
    return ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"]


def busy(data, start="2026-03-01 00:00", end="2026-04-15 00:00", tz="Europe/Berlin", **kwargs):
    return busy_times(data, start=utc(start), end=utc(end), default_tz=tz, **kwargs)


@pytest.mark.parametrize(
    ("name", "start", "end", "default_tz", "expected"),
    [
        pytest.param(
            "google.ics",
            "2026-03-01 00:00",
            "2026-04-01 00:00",
            # X-WR-TIMEZONE (New York) wins over the expert's zone for floating and all-day
            # times, and keeps the UTC weekly event at 10:00 New York across the DST change.
            "Europe/Berlin",
            spans(
                ("2026-03-03 15:00", "2026-03-03 16:00"),
                ("2026-03-05 14:00", "2026-03-05 15:00"),
                ("2026-03-10 14:00", "2026-03-10 15:00"),
                ("2026-03-12 12:00", "2026-03-12 13:00"),
                ("2026-03-17 14:00", "2026-03-17 15:00"),
                ("2026-03-20 04:00", "2026-03-21 04:00"),
            ),
            id="google-x-wr-timezone",
        ),
        pytest.param(
            "outlook.ics",
            "2026-03-01 00:00",
            "2026-04-15 00:00",
            "UTC",
            spans(
                ("2026-03-10 16:00", "2026-03-10 17:00"),  # Pacific Standard Time, in PDT
                ("2026-03-15 04:30", "2026-03-15 05:30"),  # Customized Time Zone, +05:30
                ("2026-03-23 14:00", "2026-03-23 14:30"),  # weekly, CET ...
                ("2026-03-25 09:00", "2026-03-25 10:00"),
                ("2026-03-30 13:00", "2026-03-30 13:30"),  # ... then CEST
                ("2026-04-01 08:00", "2026-04-01 09:00"),
            ),
            id="outlook-windows-zones",
        ),
        pytest.param(
            "recurring.ics",
            "2026-03-01 00:00",
            "2026-04-15 00:00",
            "Europe/Berlin",
            # Mar 2 from the rule, Mar 5 from RDATE, Mar 9 excluded (EXDATE), Mar 16 moved
            # to Mar 17 14:00, Mar 23 cancelled, Mar 30 marked free, then UNTIL.
            spans(
                ("2026-03-02 09:00", "2026-03-02 10:00"),
                ("2026-03-05 15:00", "2026-03-05 16:00"),
                ("2026-03-17 13:00", "2026-03-17 14:00"),
            ),
            id="rrule-exdate-rdate-moved-cancelled",
        ),
        pytest.param(
            "allday.ics",
            "2026-03-01 00:00",
            "2026-11-01 00:00",
            "Europe/Berlin",
            spans(
                ("2026-03-25 23:00", "2026-03-26 23:00"),  # Thursday, CET
                ("2026-03-28 23:00", "2026-03-29 22:00"),  # the 23-hour Sunday
                ("2026-04-01 22:00", "2026-04-02 22:00"),  # Thursday, CEST
                ("2026-04-14 22:00", "2026-04-15 22:00"),  # no DTEND: one day
                ("2026-10-23 22:00", "2026-10-25 23:00"),  # Sat + the 25-hour Sunday
            ),
            id="all-day-across-dst",
        ),
        pytest.param(
            "skipped.ics",
            "2026-05-01 00:00",
            "2026-05-08 00:00",
            "UTC",
            # Transparent, cancelled, own, start-less, zero-length, to-do and damaged events
            # block nothing; DURATION works and touching events merge.
            spans(
                ("2026-05-05 12:00", "2026-05-05 14:00"),
                ("2026-05-06 08:00", "2026-05-06 09:00"),
                ("2026-05-07 10:00", "2026-05-07 11:00"),
            ),
            id="skipped-events",
        ),
    ],
)
def test_feed_files(name, start, end, default_tz, expected):
    data = (FEEDS / name).read_bytes()
    result = busy(
        data, start, end, default_tz, is_own_uid=lambda uid: uid.endswith("@expertbook.test")
    )
    assert result == expected


def test_own_uids_are_asked_about_each_event_that_blocks():
    asked = []

    def is_own_uid(uid):
        asked.append(uid)
        return uid == "booking-42@expertbook.test"

    busy(
        (FEEDS / "skipped.ics").read_bytes(),
        "2026-05-01 00:00",
        "2026-05-08 00:00",
        "UTC",
        is_own_uid=is_own_uid,
    )
    # Each event that holds busy time, once: not the free, cancelled, empty or broken ones.
    assert sorted(asked) == sorted(set(asked))
    assert "booking-42@expertbook.test" in asked
    assert not {"cancelled@example.com", "transparent@example.com"} & set(asked)


def test_busy_by_object_tells_files_and_uids_apart():
    def calendar(*events):
        return (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "".join(events) + "END:VCALENDAR\r\n"
        ).encode()

    def vevent(uid, day, extra=""):
        return (
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART:202603{day:02}T100000Z\r\n"
            f"DTEND:202603{day:02}T110000Z\r\n{extra}END:VEVENT\r\n"
        )

    files = [
        calendar(vevent("a", 2)),
        calendar(vevent("free", 3, "TRANSP:TRANSPARENT\r\n")),
        calendar(vevent("b", 4, "RRULE:FREQ=DAILY;COUNT=2\r\n")),
    ]
    window = dict(start=utc("2026-03-01 00:00"), end=utc("2026-04-01 00:00"), default_tz="UTC")
    by_file = busy_by_object(files, by="file", **window)
    assert sorted(by_file) == [0, 2]  # the free event's file holds no busy time
    assert by_file[0].uid == "a" and [i.start for i in by_file[0].busy] == [utc("2026-03-02 10:00")]
    assert by_file[2].uid == "b" and len(by_file[2].busy) == 2
    both = calendar(vevent("a", 2), vevent("b", 4, "RRULE:FREQ=DAILY;COUNT=2\r\n"))
    by_uid = busy_by_object(both, by="uid", **window)
    assert sorted(by_uid) == ["a", "b"]


def test_own_event_blocks_when_not_recognised():
    data = (FEEDS / "skipped.ics").read_bytes()
    result = busy(data, "2026-05-04 00:00", "2026-05-05 00:00", "UTC")
    assert result == spans(("2026-05-04 13:00", "2026-05-04 14:00"))


def paris_feed(offset: str) -> bytes:
    """A feed in the Windows zone "Romance Standard Time" (Paris) whose VTIMEZONE says
    `offset` all year."""
    return ics(
        "BEGIN:VTIMEZONE",
        "TZID:Romance Standard Time",
        "BEGIN:STANDARD",
        "DTSTART:16010101T000000",
        f"TZOFFSETFROM:{offset}",
        f"TZOFFSETTO:{offset}",
        "END:STANDARD",
        "END:VTIMEZONE",
        *event(
            "paris",
            "DTSTART;TZID=Romance Standard Time:20260325T100000",
            "DTEND;TZID=Romance Standard Time:20260325T110000",
        ),
    )


@pytest.mark.parametrize("offset", ["+0900", "+0100"])
def test_windows_zone_name_is_read_as_its_iana_zone(offset):
    # icalendar caches a VTIMEZONE per TZID for the whole process, first one wins: were the
    # feed's definition used, a wrong one read first would move every later feed's events.
    # 10:00 in Paris on March 25 is 09:00Z, whatever the first feed said.
    result = busy(paris_feed(offset), "2026-03-25 00:00", "2026-03-26 00:00")
    assert result == spans(("2026-03-25 09:00", "2026-03-25 10:00"))


@pytest.mark.parametrize(
    ("default_tz", "expected"),
    [
        ("Europe/Berlin", ("2026-03-28 23:00", "2026-03-29 22:00")),
        ("America/New_York", ("2026-03-29 04:00", "2026-03-30 04:00")),
        ("Asia/Tokyo", ("2026-03-28 15:00", "2026-03-29 15:00")),
        ("UTC", ("2026-03-29 00:00", "2026-03-30 00:00")),
    ],
)
def test_all_day_event_is_the_local_day_of_the_default_zone(default_tz, expected):
    data = ics(*event("day", "DTSTART;VALUE=DATE:20260329", "DTEND;VALUE=DATE:20260330"))
    assert busy(data, tz=default_tz) == spans(expected)


def test_unknown_x_wr_timezone_falls_back_to_the_default_zone():
    data = ics(
        "X-WR-TIMEZONE:Mars/Olympus_Mons",
        *event("f", "DTSTART:20260305T090000", "DTEND:20260305T100000"),
    )
    assert busy(data) == spans(("2026-03-05 08:00", "2026-03-05 09:00"))


def test_floating_time_far_from_utc_is_found_at_the_window_edge():
    # 10:00 in Pago Pago (UTC-11) is 21:00Z: outside the window read as wall times.
    data = ics(*event("edge", "DTSTART:20260301T100000", "DTEND:20260301T110000"))
    result = busy(data, "2026-03-01 20:00", "2026-03-01 22:00", "Pacific/Pago_Pago")
    assert result == spans(("2026-03-01 21:00", "2026-03-01 22:00"))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-03-02 00:00", "2026-03-03 00:00", [("2026-03-02 00:00", "2026-03-02 02:00")]),
        ("2026-03-01 00:00", "2026-03-02 00:00", [("2026-03-01 23:00", "2026-03-02 00:00")]),
        ("2026-03-02 00:30", "2026-03-02 01:00", [("2026-03-02 00:30", "2026-03-02 01:00")]),
        ("2026-03-02 02:00", "2026-03-03 00:00", []),  # half-open: the end touches only
        ("2026-02-01 00:00", "2026-03-01 23:00", []),
    ],
)
def test_window_clips(start, end, expected):
    data = ics(*event("late", "DTSTART:20260301T230000Z", "DTEND:20260302T020000Z"))
    assert busy(data, start, end, "UTC") == spans(*expected)


def test_caldav_objects_give_the_same_as_one_file():
    # A CalDAV calendar: one object per event, each with its own copy of the VTIMEZONE.
    text = (FEEDS / "outlook.ics").read_bytes().decode()
    head, _, rest = text.partition("BEGIN:VEVENT")
    zones = head[head.index("BEGIN:VTIMEZONE") :]
    bodies = ("BEGIN:VEVENT" + rest).removesuffix("END:VCALENDAR\r\n").split("BEGIN:VEVENT")
    objects = [
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{zones}BEGIN:VEVENT{body}END:VCALENDAR\r\n".encode()
        for body in bodies
        if body
    ]
    assert len(objects) == 6
    whole = busy((FEEDS / "outlook.ics").read_bytes(), tz="UTC")
    assert busy(objects, tz="UTC") == whole
    assert len(whole) == 6


def test_series_split_over_caldav_objects_keeps_its_exceptions():
    master = ics(
        *event(
            "s",
            "DTSTART:20260302T090000Z",
            "DTEND:20260302T100000Z",
            "RRULE:FREQ=DAILY;COUNT=3",
        )
    )
    moved = ics(
        *event(
            "s",
            "RECURRENCE-ID:20260303T090000Z",
            "DTSTART:20260303T150000Z",
            "DTEND:20260303T160000Z",
        )
    )
    assert busy([master, moved], tz="UTC") == spans(
        ("2026-03-02 09:00", "2026-03-02 10:00"),
        ("2026-03-03 15:00", "2026-03-03 16:00"),
        ("2026-03-04 09:00", "2026-03-04 10:00"),
    )


def test_empty_list_is_no_busy_time():
    assert busy([]) == []


def test_calendar_without_events_is_no_busy_time():
    assert busy(ics("PRODID:-//Example//EN")) == []


def test_bytes_that_are_not_utf8_are_read():
    data = ics(*event("latin-1", "SUMMARY:Cafe", "DTSTART:20260305T090000Z", "DURATION:PT1H"))
    data = data.replace(b"SUMMARY:Cafe", b"SUMMARY:Caf\xe9 \xff")
    assert busy(data, tz="UTC") == spans(("2026-03-05 09:00", "2026-03-05 10:00"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The calendar file is empty."),
        (b" \r\n\r\n", "The calendar file is empty."),
        (
            b"<!DOCTYPE html>\n<html><body>Sign in</body></html>",
            "The address returned a web page, not an iCalendar file.",
        ),
        (b'{"error": "not found"}', "The address did not return an iCalendar file."),
        (bytes(range(256)), "The address did not return an iCalendar file."),
        (
            b"BEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n",
            "The address did not return an iCalendar file.",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:2026",
            "The calendar file is damaged: it ends before END:VCALENDAR.",
        ),
        (
            b"BEGIN:VCALENDAR\r\nthis is not a content line\r\nEND:VCALENDAR\r\n",
            "The calendar file is damaged: line 2 is not an iCalendar line.",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
            "The calendar file is damaged: END:VTODO out of place.",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VCALENDAR\r\n",
            "The calendar file is damaged: END:VCALENDAR out of place.",
        ),
    ],
)
def test_data_that_is_not_a_calendar(data, message):
    with pytest.raises(FeedError) as error:
        busy(data)
    assert error.value.message == message == str(error.value)


def test_one_bad_file_among_caldav_objects_fails_the_calendar():
    good = ics(*event("a", "DTSTART:20260305T090000Z", "DTEND:20260305T100000Z"))
    with pytest.raises(FeedError, match="web page"):
        busy([good, b"<html></html>"])


def test_too_many_bytes():
    with pytest.raises(FeedError, match="larger than 10 MB"):
        busy([b"x" * (MAX_FEED_BYTES // 2), b"x" * (MAX_FEED_BYTES // 2 + 1)])


def test_too_many_events():
    lines = []
    for number in range(MAX_FEED_EVENTS + 1):
        lines += ["BEGIN:VEVENT", f"UID:{number}", "DTSTART:20200101T000000Z", "END:VEVENT"]
    with pytest.raises(FeedError, match="more than 20,000 events"):
        busy(ics(*lines))


def test_as_many_events_as_allowed():
    lines = []
    for number in range(MAX_FEED_EVENTS):
        lines += ["BEGIN:VEVENT", f"UID:{number}", "DTSTART:20200101T000000Z", "END:VEVENT"]
    assert busy(ics(*lines)) == []


def test_rule_from_long_ago_with_minute_steps_is_refused_before_expanding():
    data = ics(
        *event("m", "DTSTART:20240101T000000Z", "DTEND:20240101T000030Z", "RRULE:FREQ=MINUTELY")
    )
    with pytest.raises(FeedError, match="repeats events too often"):
        busy(data)


def test_occurrences_over_the_cap(monkeypatch):
    monkeypatch.setattr(feeds, "MAX_OCCURRENCES", 100)
    data = ics(
        *event("h", "DTSTART:20260301T000000Z", "DTEND:20260301T003000Z", "RRULE:FREQ=HOURLY")
    )
    with pytest.raises(FeedError, match="more than 100 events"):
        busy(data)


def test_occurrences_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(feeds, "MAX_OCCURRENCES", 100)
    data = ics(
        *event(
            "h",
            "DTSTART:20260301T000000Z",
            "DTEND:20260301T003000Z",
            "RRULE:FREQ=HOURLY;COUNT=4",
        )
    )
    assert busy(data) == spans(
        ("2026-03-01 00:00", "2026-03-01 00:30"),
        ("2026-03-01 01:00", "2026-03-01 01:30"),
        ("2026-03-01 02:00", "2026-03-01 02:30"),
        ("2026-03-01 03:00", "2026-03-01 03:30"),
    )


def test_reading_stops_after_the_time_limit(monkeypatch):
    monkeypatch.setattr(feeds, "MAX_EXPAND_SECONDS", -1.0)
    rule = "RRULE:FREQ=DAILY;COUNT=3"
    data = ics(*event("a", "DTSTART:20260305T090000Z", "DTEND:20260305T100000Z", rule))
    with pytest.raises(FeedError, match="takes too long"):
        busy(data)


def test_naive_window_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        busy_times(
            ics(),
            start=datetime(2026, 3, 1),
            end=datetime(2026, 3, 2, tzinfo=UTC),
            default_tz="UTC",
        )


def test_far_past_one_off_events_are_left_out_but_long_ones_still_count():
    data = ics(
        *event("past", "DTSTART:20200305T090000Z", "DTEND:20200305T100000Z"),
        # Started long ago, ends inside the window: kept despite its old DTSTART.
        *event("long", "DTSTART:20200101T000000Z", "DTEND:20260302T000000Z"),
        *event("future", "DTSTART:20300305T090000Z", "DTEND:20300305T100000Z"),
    )
    start = utc("2026-03-01 00:00")
    assert busy_times(data, start=start, end=start + timedelta(days=60), default_tz="UTC") == spans(
        ("2026-03-01 00:00", "2026-03-02 00:00")
    )


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(["DTSTART:20260305T100000Z", "RRULE:FREQ=DAILY;INTERVAL=0"], id="interval-0"),
        pytest.param(["DTSTART:20260305T100000Z", "RRULE:FREQ=DAILY;BYHOUR=25"], id="byhour-25"),
        pytest.param(["DTSTART:20260305T100000Z", "RRULE:FREQ=DAILY;COUNT=x"], id="count-x"),
        pytest.param(["DTSTART:99991231T230000Z", "DURATION:PT2H"], id="year-9999"),
        pytest.param(["DTSTART:20260305T100000Z", "DURATION:P10000000D"], id="endless"),
        pytest.param(["DTSTART:20260305T100000Z", "SEQUENCE:abc"], id="sequence-abc"),
        pytest.param(["DTSTART:20260305T100000Z", "EXDATE:garbage"], id="exdate-garbage"),
        pytest.param(["RRULE:FREQ=DAILY"], id="rule-without-dtstart"),
        pytest.param(["DTSTART:garbage", "RRULE:FREQ=DAILY"], id="rule-with-dtstart-garbage"),
        pytest.param(["DTSTART:", "RRULE:FREQ=DAILY"], id="rule-with-empty-dtstart"),
    ],
)
def test_damaged_series_is_skipped_and_the_rest_is_read(lines):
    data = ics(
        *event("damaged", *lines, *([] if "DURATION" in str(lines) else ["DURATION:PT1H"])),
        *event("good", "DTSTART:20260306T100000Z", "DTEND:20260306T110000Z"),
    )
    assert busy(data, tz="UTC") == spans(("2026-03-06 10:00", "2026-03-06 11:00"))


PLAIN_ONE_OFFS = [
    ("DTSTART:20260305T090000Z", "DTEND:20260305T100000Z"),
    ("DTSTART;TZID=Europe/Berlin:20260329T023000", "DTEND;TZID=Europe/Berlin:20260329T040000"),
    ("DTSTART;TZID=America/New_York:20260308T013000",
     "DTEND;TZID=America/New_York:20260308T033000"),
    ("DTSTART;VALUE=DATE:20260310", "DTEND;VALUE=DATE:20260312"),
    ("DTSTART:20260311T090000", "DTEND:20260311T093000"),  # floating
    ("DTSTART:20260312T090000Z", "DTEND:20260312T090000Z"),  # zero length
    ("DTSTART:20260313T100000Z", "DTEND:20260313T090000Z"),  # ends before it starts
    ("DTSTART:20260314T090000Z", "DTEND:20260314T100000Z", "TRANSP:TRANSPARENT"),
    ("DTSTART:20260315T090000Z", "DTEND:20260315T100000Z", "STATUS:CANCELLED"),
    ("DTSTART:20260316T090000Z", "DTEND;TZID=Europe/Berlin:20260316T120000"),  # mixed: slow
    ("DTSTART;TZID=W. Europe Standard Time:20260317T090000",
     "DTEND;TZID=W. Europe Standard Time:20260317T100000"),  # Windows name: slow
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(p.name for p in FEEDS.glob("*.ics")))
@pytest.mark.parametrize("tz", ["Europe/Berlin", "Pacific/Kiritimati"])
def test_plain_one_offs_read_without_icalendar_match_icalendar(name, tz, monkeypatch):
    """The fast path for plain one-off events (icstext.one_off) gives what icalendar and
    recurring-ical-events give, on every test feed and on plain events of every kind."""
    extra = ics(*[line for n, props in enumerate(PLAIN_ONE_OFFS)
                  for line in event(f"plain-{n}", *props)])  # fmt: skip
    for data in ((FEEDS / name).read_bytes(), extra):
        fast = busy(data, "2026-03-01 00:00", "2026-06-01 00:00", tz)
        monkeypatch.setattr(icstext, "one_off", lambda block: None)
        slow = busy(data, "2026-03-01 00:00", "2026-06-01 00:00", tz)
        monkeypatch.undo()
        assert fast == slow
