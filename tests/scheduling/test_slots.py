"""Hand-worked tests for expertbook.scheduling (every expected instant computed by hand)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from expertbook.scheduling import (
    Availability,
    Interval,
    SlotRules,
    UnknownTimeZone,
    busy_interval,
    day_window,
    format_hhmm,
    is_offered,
    is_valid_timezone,
    offered_slots,
    parse_hhmm,
    validate_day_intervals,
    working_intervals,
    zone,
)

NINE_TO_FIVE = [(9 * 60, 17 * 60)]
MON_FRI = {weekday: NINE_TO_FIVE for weekday in range(5)}
EVERY_DAY = {weekday: NINE_TO_FIVE for weekday in range(7)}
# Far enough before every test date that notice/horizon never interfere unless intended.
EARLY = datetime(2026, 1, 1, tzinfo=UTC)
WIDE = SlotRules(duration_minutes=60, max_days_ahead=3650)


def utc(*args: int) -> datetime:
    """Shorthand for an aware UTC datetime."""
    return datetime(*args, tzinfo=UTC)


def starts(slots: list[Interval]) -> list[datetime]:
    """The start instants of a slot list."""
    return [slot.start for slot in slots]


def hours(day: tuple[int, int, int], *hh_mm: tuple[int, int]) -> list[datetime]:
    """UTC datetimes on one day from (hour, minute) pairs."""
    return [utc(*day, h, m) for h, m in hh_mm]


def slots_for(
    availability: Availability,
    rules: SlotRules,
    day: date,
    *,
    busy: list[Interval] | None = None,
    now: datetime = EARLY,
    day_to: date | None = None,
    viewer_tz: str | None = None,
) -> list[datetime]:
    """Offered slot starts for one viewer day (or range), viewer in the expert's zone by default."""
    return starts(
        offered_slots(
            availability,
            rules,
            busy or [],
            now=now,
            day_from=day,
            day_to=day_to or day,
            viewer_tz=viewer_tz or availability.timezone,
        )
    )


# --------------------------------------------------------------------------- zones


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Olympus",
        "",
        "../../etc/passwd",
        "/etc/passwd",
        "x" * 10000,
        "Europe",
        "Europe/",
        "Europe//London",
        "Europe/London\x00",
        "zone.tab",
        " Europe/London",
        None,
        42,
    ],
)
def test_zone_rejects_unknown_names(name: object) -> None:
    with pytest.raises(UnknownTimeZone):
        zone(name)  # type: ignore[arg-type]
    assert is_valid_timezone(name) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["Europe/London", "UTC", "Asia/Kolkata", "America/Port-au-Prince", "Etc/GMT+5"]
)
def test_zone_accepts_iana_names(name: str) -> None:
    assert zone(name) == ZoneInfo(name)
    assert is_valid_timezone(name) is True


def test_unknown_timezone_is_a_value_error() -> None:
    assert issubclass(UnknownTimeZone, ValueError)


def test_availability_rejects_unknown_zone() -> None:
    with pytest.raises(UnknownTimeZone):
        Availability("Mars/Olympus", MON_FRI)


# --------------------------------------------------------------------------- HH:MM


@pytest.mark.parametrize(
    ("text", "allow_24", "expected"),
    [
        ("00:00", False, 0),
        ("09:30", False, 570),
        ("23:59", False, 1439),
        ("24:00", True, 1440),
        ("12:00", True, 720),
    ],
)
def test_parse_hhmm_good(text: str, allow_24: bool, expected: int) -> None:
    assert parse_hhmm(text, allow_24=allow_24) == expected


@pytest.mark.parametrize(
    ("text", "allow_24"),
    [
        ("9:3", False),
        ("9:30", False),
        ("25:00", False),
        ("24:00", False),
        ("24:01", True),
        ("12:60", False),
        ("", False),
        ("12:00:00", False),
        ("12-00", False),
        (" 12:00", False),
        ("12:00\n", False),
        ("١٢:٠٠", False),  # Arabic-Indic digits match \d but are not accepted
        (None, False),
    ],
)
def test_parse_hhmm_bad(text: str, allow_24: bool) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(text, allow_24=allow_24)


@pytest.mark.parametrize(("minutes", "text"), [(0, "00:00"), (570, "09:30"), (1440, "24:00")])
def test_format_hhmm(minutes: int, text: str) -> None:
    assert format_hhmm(minutes) == text


@pytest.mark.parametrize("minutes", [-1, 1441])
def test_format_hhmm_out_of_range(minutes: int) -> None:
    with pytest.raises(ValueError):
        format_hhmm(minutes)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([], []),
        ([(540, 720)], [(540, 720)]),
        ([(780, 1020), (540, 720)], [(540, 720), (780, 1020)]),
        ([(540, 720), (720, 780)], [(540, 720), (720, 780)]),  # back-to-back is fine
        ([(0, 1440)], [(0, 1440)]),
    ],
)
def test_validate_day_intervals_good(
    given: list[tuple[int, int]], expected: list[tuple[int, int]]
) -> None:
    assert validate_day_intervals(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([(720, 540)], "must end after it starts"),
        ([(540, 540)], "must end after it starts"),
        ([(-10, 540)], "between 00:00 and 24:00"),
        ([(540, 1441)], "between 00:00 and 24:00"),
        ([(540, 720), (700, 800)], "overlap"),
        ([(540, 1020), (600, 660)], "overlap"),
        ([(540,)], "pair"),
        ([("09:00", "10:00")], "whole minutes"),
        ([(True, 600)], "whole minutes"),
    ],
)
def test_validate_day_intervals_bad(given: list[tuple[int, int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_day_intervals(given)


def test_overlap_message_is_human_readable() -> None:
    with pytest.raises(ValueError, match="09:00-12:00 and 11:00-13:00 overlap"):
        validate_day_intervals([(660, 780), (540, 720)])


def test_availability_validates_its_hours() -> None:
    with pytest.raises(ValueError):
        Availability("UTC", {0: [(600, 540)]})
    with pytest.raises(ValueError):
        Availability("UTC", {7: NINE_TO_FIVE})
    with pytest.raises(ValueError):
        Availability("UTC", {}, {date(2026, 6, 1): [(540, 720), (600, 660)]})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"duration_minutes": 0},
        {"duration_minutes": 30, "interval_minutes": 0},
        {"duration_minutes": 30, "buffer_before_minutes": -1},
        {"duration_minutes": 30, "buffer_after_minutes": -1},
        {"duration_minutes": 30, "min_notice_minutes": -1},
        {"duration_minutes": 30, "max_days_ahead": -1},
    ],
)
def test_slot_rules_validation(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        SlotRules(**kwargs)


# --------------------------------------------------------------------------- intervals


def test_interval_overlaps_is_half_open() -> None:
    a = Interval(utc(2026, 6, 1, 9), utc(2026, 6, 1, 10))
    assert a.overlaps(Interval(utc(2026, 6, 1, 9, 59), utc(2026, 6, 1, 11)))
    assert not a.overlaps(Interval(utc(2026, 6, 1, 10), utc(2026, 6, 1, 11)))
    assert not Interval(utc(2026, 6, 1, 10), utc(2026, 6, 1, 11)).overlaps(a)


@pytest.mark.parametrize(
    ("day_from", "day_to", "tz", "start", "end"),
    [
        (date(2026, 6, 15), date(2026, 6, 15), "UTC", utc(2026, 6, 15), utc(2026, 6, 16)),
        (
            date(2026, 6, 15),
            date(2026, 6, 16),
            "America/New_York",
            utc(2026, 6, 15, 4),
            utc(2026, 6, 17, 4),
        ),
        (
            date(2026, 6, 16),
            date(2026, 6, 16),
            "Asia/Kolkata",
            utc(2026, 6, 15, 18, 30),
            utc(2026, 6, 16, 18, 30),
        ),
        # London's spring-forward day lasts 23 hours, the autumn day 25.
        (
            date(2026, 3, 29),
            date(2026, 3, 29),
            "Europe/London",
            utc(2026, 3, 29),
            utc(2026, 3, 29, 23),
        ),
        (
            date(2026, 10, 25),
            date(2026, 10, 25),
            "Europe/London",
            utc(2026, 10, 24, 23),
            utc(2026, 10, 26),
        ),
    ],
)
def test_day_window(day_from: date, day_to: date, tz: str, start: datetime, end: datetime) -> None:
    window = day_window(day_from, day_to, tz)
    assert window == Interval(start, end)
    assert window.start.tzinfo is UTC and window.end.tzinfo is UTC


def test_day_window_rejects_reversed_range_and_bad_zone() -> None:
    with pytest.raises(ValueError):
        day_window(date(2026, 6, 2), date(2026, 6, 1), "UTC")
    with pytest.raises(UnknownTimeZone):
        day_window(date(2026, 6, 1), date(2026, 6, 1), "Mars/Olympus")
    with pytest.raises(ValueError):
        day_window(date.max, date.max, "UTC")


def test_busy_interval_widens_and_converts_to_utc() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    start = datetime(2026, 6, 15, 15, 30, tzinfo=kolkata)  # = 10:00Z
    got = busy_interval(start, start + timedelta(minutes=30), 10, 20)
    assert got == Interval(utc(2026, 6, 15, 9, 50), utc(2026, 6, 15, 10, 50))
    assert got.start.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "end", "before", "after"),
    [
        (datetime(2026, 6, 15, 10), utc(2026, 6, 15, 11), 0, 0),  # naive
        (utc(2026, 6, 15, 11), utc(2026, 6, 15, 10), 0, 0),  # reversed
        (utc(2026, 6, 15, 10), utc(2026, 6, 15, 11), -5, 0),
    ],
)
def test_busy_interval_rejects_bad_input(
    start: datetime, end: datetime, before: int, after: int
) -> None:
    with pytest.raises(ValueError):
        busy_interval(start, end, before, after)


def test_working_intervals_london_across_both_changes() -> None:
    availability = Availability("Europe/London", EVERY_DAY)
    # Sat 28 Mar (GMT), Sun 29 Mar (change at 01:00Z, BST), Mon 30 Mar (BST)
    assert working_intervals(availability, date(2026, 3, 28), date(2026, 3, 30)) == [
        Interval(utc(2026, 3, 28, 9), utc(2026, 3, 28, 17)),
        Interval(utc(2026, 3, 29, 8), utc(2026, 3, 29, 16)),
        Interval(utc(2026, 3, 30, 8), utc(2026, 3, 30, 16)),
    ]
    # Sat 24 Oct (BST), Sun 25 Oct (change at 01:00Z, GMT by 09:00), Mon 26 Oct (GMT)
    assert working_intervals(availability, date(2026, 10, 24), date(2026, 10, 26)) == [
        Interval(utc(2026, 10, 24, 8), utc(2026, 10, 24, 16)),
        Interval(utc(2026, 10, 25, 9), utc(2026, 10, 25, 17)),
        Interval(utc(2026, 10, 26, 9), utc(2026, 10, 26, 17)),
    ]


def test_working_intervals_works_each_day_out_once_per_availability(monkeypatch) -> None:
    from expertbook.scheduling import slots

    availability = Availability("Europe/London", EVERY_DAY)
    # Sat 24 Oct to Mon 26 Oct (the change back to GMT on the Sunday), asked for twice, and
    # then a range overlapping it: the same answers, and each day's hours converted once.
    first = working_intervals(availability, date(2026, 10, 24), date(2026, 10, 26))
    calls = []
    convert = slots.local_to_utc
    monkeypatch.setattr(slots, "local_to_utc", lambda *a: calls.append(a[0]) or convert(*a))
    assert working_intervals(availability, date(2026, 10, 24), date(2026, 10, 26)) == first
    assert calls == []
    wider = working_intervals(availability, date(2026, 10, 25), date(2026, 10, 27))
    assert wider == [*first[1:], Interval(utc(2026, 10, 27, 9), utc(2026, 10, 27, 17))]
    assert calls == [date(2026, 10, 27)] * 2
    # It keeps a few days, not every day ever asked for (a process keeps thousands of
    # experts' hours), and a long range is worked out all the same.
    monkeypatch.undo()
    year = working_intervals(availability, date(2026, 1, 1), date(2026, 12, 31))
    assert len(availability._utc_days) <= 16
    london = ZoneInfo("Europe/London")
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
    assert year == [
        Interval(
            datetime.combine(day, time(9), london).astimezone(UTC),
            datetime.combine(day, time(17), london).astimezone(UTC),
        )
        for day in days
    ]

    # A day whose working out failed half-way is not kept (another request would find it
    # empty): the next ask works it out again.
    def fails_on_the_end(day, minute, tz):
        if minute == 17 * 60:
            raise ValueError("out of range")
        return convert(day, minute, tz)

    monkeypatch.setattr(slots, "local_to_utc", fails_on_the_end)
    with pytest.raises(ValueError):
        working_intervals(availability, date(2026, 10, 28), date(2026, 10, 28))
    monkeypatch.setattr(slots, "local_to_utc", convert)
    assert working_intervals(availability, date(2026, 10, 28), date(2026, 10, 28)) == [
        Interval(utc(2026, 10, 28, 9), utc(2026, 10, 28, 17))
    ]
    # Another availability (other hours, the same days) works out its own.
    other = Availability("Europe/London", {day: [(600, 660)] for day in range(7)})
    assert working_intervals(other, date(2026, 10, 24), date(2026, 10, 24)) == [
        Interval(utc(2026, 10, 24, 9), utc(2026, 10, 24, 10))
    ]
    assert other == Availability("Europe/London", {day: [(600, 660)] for day in range(7)})


def test_working_intervals_empty_range_and_overrides() -> None:
    availability = Availability(
        "UTC",
        MON_FRI,
        {date(2026, 6, 16): [], date(2026, 6, 20): [(600, 660)]},
    )
    assert working_intervals(availability, date(2026, 6, 16), date(2026, 6, 15)) == []
    # Mon 15 normal, Tue 16 off, Wed-Fri normal, Sat 20 override
    got = working_intervals(availability, date(2026, 6, 15), date(2026, 6, 21))
    assert [iv.start for iv in got] == [
        utc(2026, 6, 15, 9),
        utc(2026, 6, 17, 9),
        utc(2026, 6, 18, 9),
        utc(2026, 6, 19, 9),
        utc(2026, 6, 20, 10),
    ]


# --------------------------------------------------------------------------- DST


@pytest.mark.parametrize(
    ("day", "expected_first", "expected_last"),
    [
        # winter (GMT): 09:00 local = 09:00Z; summer (BST): 09:00 local = 08:00Z
        (date(2026, 3, 28), utc(2026, 3, 28, 9), utc(2026, 3, 28, 16)),
        (date(2026, 3, 29), utc(2026, 3, 29, 8), utc(2026, 3, 29, 15)),
        (date(2026, 3, 30), utc(2026, 3, 30, 8), utc(2026, 3, 30, 15)),
        (date(2026, 10, 24), utc(2026, 10, 24, 8), utc(2026, 10, 24, 15)),
        (date(2026, 10, 25), utc(2026, 10, 25, 9), utc(2026, 10, 25, 16)),
        (date(2026, 10, 26), utc(2026, 10, 26, 9), utc(2026, 10, 26, 16)),
    ],
)
def test_london_nine_to_five_across_dst(
    day: date, expected_first: datetime, expected_last: datetime
) -> None:
    availability = Availability("Europe/London", EVERY_DAY)
    got = slots_for(availability, WIDE, day)
    assert len(got) == 8
    assert got[0] == expected_first
    assert got[-1] == expected_last
    # Every slot is still on the hour in local time.
    london = ZoneInfo("Europe/London")
    assert [s.astimezone(london).hour for s in got] == list(range(9, 17))


def test_nonexistent_local_times_on_spring_forward_day() -> None:
    # Sun 29 Mar 2026: 01:00 GMT -> 02:00 BST. 01:00 local (in the gap) is taken with fold=0,
    # i.e. the GMT offset: 01:00Z (= 02:00 BST). 03:00 local is BST = 02:00Z. One real hour.
    availability = Availability("Europe/London", {6: [(60, 180)]})
    rules = SlotRules(duration_minutes=30, max_days_ahead=3650)
    assert slots_for(availability, rules, date(2026, 3, 29)) == hours(
        (2026, 3, 29), (1, 0), (1, 30)
    )


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        # 01:30 (gap) -> 01:30Z = 02:30 BST; 04:00 BST = 03:00Z: room for one 60-min slot
        ((90, 240), [utc(2026, 3, 29, 1, 30)]),
        # 01:30 (gap) -> 01:30Z, 02:30 BST -> 01:30Z: empty, yields nothing
        ((90, 150), []),
        # 01:30 (gap) -> 01:30Z, 02:00 BST -> 01:00Z: end before start, yields nothing
        ((90, 120), []),
    ],
)
def test_gap_shifted_intervals(interval: tuple[int, int], expected: list[datetime]) -> None:
    availability = Availability("Europe/London", {6: [interval]})
    assert slots_for(availability, WIDE, date(2026, 3, 29)) == expected


def test_repeated_local_time_on_fall_back_day() -> None:
    # Sun 25 Oct 2026: 02:00 BST -> 01:00 GMT. 01:00 local is its first occurrence (BST) =
    # 00:00Z; 02:00 local is GMT = 02:00Z. Two real hours, so two 60-min slots.
    availability = Availability("Europe/London", {6: [(60, 120)]})
    assert working_intervals(availability, date(2026, 10, 25), date(2026, 10, 25)) == [
        Interval(utc(2026, 10, 25, 0), utc(2026, 10, 25, 2))
    ]
    assert slots_for(availability, WIDE, date(2026, 10, 25)) == hours(
        (2026, 10, 25), (0, 0), (1, 0)
    )


def test_grid_steps_in_elapsed_time_across_a_change() -> None:
    # 00:00-04:00 local on the spring day is 00:00Z-03:00Z (3 real hours); 90-min slots on the
    # elapsed-time grid: 00:00Z, 01:30Z (= 02:30 BST).
    availability = Availability("Europe/London", {6: [(0, 240)]})
    rules = SlotRules(duration_minutes=90, max_days_ahead=3650)
    assert slots_for(availability, rules, date(2026, 3, 29)) == hours(
        (2026, 3, 29), (0, 0), (1, 30)
    )


def test_overlapping_converted_intervals_report_each_start_once() -> None:
    # 00:00-01:30 -> 00:00Z-01:30Z and 02:00-04:00 -> 01:00Z-03:00Z overlap after conversion.
    availability = Availability("Europe/London", {6: [(0, 90), (120, 240)]})
    rules = SlotRules(duration_minutes=30, max_days_ahead=3650)
    assert slots_for(availability, rules, date(2026, 3, 29)) == hours(
        (2026, 3, 29), (0, 0), (0, 30), (1, 0), (1, 30), (2, 0), (2, 30)
    )


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        ("UTC", date(2026, 6, 15), hours((2026, 6, 15), (22, 0), (23, 0))),
        # London winter: 22:00 GMT = 22:00Z, 24:00 = Tue 00:00 GMT
        ("Europe/London", date(2026, 1, 12), hours((2026, 1, 12), (22, 0), (23, 0))),
        # London summer: 22:00 BST = 21:00Z, 24:00 = Tue 00:00 BST = 23:00Z
        ("Europe/London", date(2026, 6, 15), hours((2026, 6, 15), (21, 0), (22, 0))),
    ],
)
def test_end_at_24_00(tz: str, day: date, expected: list[datetime]) -> None:
    availability = Availability(tz, {0: [(22 * 60, 1440)]})
    window_day = day  # the viewer is in UTC so the whole evening falls on one viewer day
    assert slots_for(availability, WIDE, window_day, viewer_tz="UTC") == expected


def test_24_00_end_meets_next_day_start() -> None:
    # Mon 22:00-24:00 and Tue 00:00-02:00 make one continuous evening, two separate grids.
    availability = Availability("UTC", {0: [(22 * 60, 1440)], 1: [(0, 120)]})
    rules = SlotRules(duration_minutes=90, max_days_ahead=3650)
    got = slots_for(availability, rules, date(2026, 6, 15), day_to=date(2026, 6, 16))
    assert got == [utc(2026, 6, 15, 22), utc(2026, 6, 16, 0)]


# --------------------------------------------------------------------------- viewer zones


def test_kolkata_viewer_of_new_york_expert() -> None:
    # Expert NY Mon-Fri 09:00-17:00 EDT = 13:00Z-21:00Z (slots 13:00Z..20:00Z).
    # Viewer day Tue 16 Jun in IST (+05:30) = [Mon 18:30Z, Tue 18:30Z): Monday's 19:00Z and
    # 20:00Z (00:30 and 01:30 IST Tuesday) plus Tuesday's 13:00Z..18:00Z (18:30..23:30 IST).
    availability = Availability("America/New_York", MON_FRI)
    got = slots_for(availability, WIDE, date(2026, 6, 16), viewer_tz="Asia/Kolkata")
    assert got == [utc(2026, 6, 15, 19), utc(2026, 6, 15, 20)] + [
        utc(2026, 6, 16, h) for h in range(13, 19)
    ]
    kolkata = ZoneInfo("Asia/Kolkata")
    assert {s.astimezone(kolkata).date() for s in got} == {date(2026, 6, 16)}


def test_new_york_viewer_of_kolkata_expert() -> None:
    # Expert Kolkata Mon-Fri 09:00-17:00 IST = 03:30Z-11:30Z (slots 03:30Z..10:30Z).
    availability = Availability("Asia/Kolkata", MON_FRI)
    # Viewer's Sunday 14 Jun (EDT) = [Sun 04:00Z, Mon 04:00Z): the expert does not work on
    # Sunday, yet Monday's 03:30Z slot (= Sun 23:30 EDT) belongs to the viewer's Sunday.
    assert slots_for(availability, WIDE, date(2026, 6, 14), viewer_tz="America/New_York") == [
        utc(2026, 6, 15, 3, 30)
    ]
    # Viewer's Monday = [Mon 04:00Z, Tue 04:00Z): Monday's 04:30Z..10:30Z and Tuesday's 03:30Z.
    assert slots_for(availability, WIDE, date(2026, 6, 15), viewer_tz="America/New_York") == [
        utc(2026, 6, 15, h, 30) for h in range(4, 11)
    ] + [utc(2026, 6, 16, 3, 30)]


def test_new_york_viewer_of_london_expert_during_dst_mismatch() -> None:
    # 9-27 Mar 2026: New York is already on EDT (-4) but London is still on GMT (+0).
    # Expert London Mon 16 Mar 09:00-17:00 GMT = 09:00Z-17:00Z; viewer's Mon 16 Mar in EDT is
    # [04:00Z, Tue 04:00Z): all 8 slots, first at 05:00 EDT.
    availability = Availability("Europe/London", MON_FRI)
    got = slots_for(availability, WIDE, date(2026, 3, 16), viewer_tz="America/New_York")
    assert got == [utc(2026, 3, 16, h) for h in range(9, 17)]
    assert got[0].astimezone(ZoneInfo("America/New_York")).hour == 5


def test_multi_day_range_in_viewer_zone() -> None:
    availability = Availability("America/New_York", MON_FRI)
    got = slots_for(
        availability,
        WIDE,
        date(2026, 6, 16),
        day_to=date(2026, 6, 17),
        viewer_tz="Asia/Kolkata",
    )
    # Tue+Wed IST = [Mon 18:30Z, Wed 18:30Z)
    assert got == (
        [utc(2026, 6, 15, 19), utc(2026, 6, 15, 20)]
        + [utc(2026, 6, 16, h) for h in range(13, 21)]
        + [utc(2026, 6, 17, h) for h in range(13, 19)]
    )


# --------------------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # Mon 15 Jun: the weekly hours
        (date(2026, 6, 15), [utc(2026, 6, 15, h) for h in range(9, 17)]),
        # Tue 16 Jun: day off
        (date(2026, 6, 16), []),
        # Wed 17 Jun: other hours 10:00-12:00 and 14:30-15:30 instead of 09:00-17:00
        (date(2026, 6, 17), hours((2026, 6, 17), (10, 0), (11, 0), (14, 30))),
        # Sat 20 Jun: normally off, override 09:00-11:00
        (date(2026, 6, 20), hours((2026, 6, 20), (9, 0), (10, 0))),
        # Sun 21 Jun: normally off, no override
        (date(2026, 6, 21), []),
    ],
)
def test_overrides(day: date, expected: list[datetime]) -> None:
    availability = Availability(
        "UTC",
        MON_FRI,
        {
            date(2026, 6, 16): [],
            date(2026, 6, 17): [(600, 720), (870, 930)],
            date(2026, 6, 20): [(540, 660)],
        },
    )
    assert slots_for(availability, WIDE, day) == expected


def test_override_applies_to_the_expert_local_date() -> None:
    # Expert in Kolkata, day off on Mon 15 Jun (IST). The NY viewer's Sunday 14 Jun would
    # otherwise show Monday's 03:30Z slot; with the override it shows nothing.
    availability = Availability("Asia/Kolkata", MON_FRI, {date(2026, 6, 15): []})
    assert slots_for(availability, WIDE, date(2026, 6, 14), viewer_tz="America/New_York") == []


# --------------------------------------------------------------------------- rules


UTC_MON = Availability("UTC", MON_FRI)
MONDAY = date(2026, 6, 15)


def test_buffers_of_this_event_type() -> None:
    # Busy 10:00-10:30; 30-min slots with 15 min before and after.
    # 09:00 -> [08:45, 09:45) free; 09:30 -> [09:15, 10:15) hits; 10:00 taken;
    # 10:30 -> [10:15, 11:15) hits; 11:00 -> [10:45, 11:45) free. Buffers may leave the
    # working hours: 16:30 -> [16:15, 17:15) is offered.
    availability = Availability("UTC", {0: [(540, 720), (960, 1020)]})
    rules = SlotRules(30, buffer_before_minutes=15, buffer_after_minutes=15, max_days_ahead=3650)
    busy = [Interval(utc(2026, 6, 15, 10), utc(2026, 6, 15, 10, 30))]
    assert slots_for(availability, rules, MONDAY, busy=busy) == hours(
        (2026, 6, 15), (9, 0), (11, 0), (11, 30), (16, 0), (16, 30)
    )


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        # asymmetric buffers: only the side that faces the booking matters
        (30, 0, hours((2026, 6, 15), (9, 0), (9, 30), (11, 0), (11, 30))),
        (0, 30, hours((2026, 6, 15), (9, 0), (10, 30), (11, 0), (11, 30))),
    ],
)
def test_asymmetric_buffers(before: int, after: int, expected: list[datetime]) -> None:
    # Busy 10:00-10:30 (before 30: 10:30 -> [10:00, 11:00) hits; after 30: 09:30 -> [09:30,
    # 10:30) hits).
    availability = Availability("UTC", {0: [(540, 720)]})
    rules = SlotRules(
        30, buffer_before_minutes=before, buffer_after_minutes=after, max_days_ahead=3650
    )
    busy = [Interval(utc(2026, 6, 15, 10), utc(2026, 6, 15, 10, 30))]
    assert slots_for(availability, rules, MONDAY, busy=busy) == expected


def test_busy_widened_by_other_types_buffers() -> None:
    # Another type's booking 10:00-10:30 with 30 min after -> busy [10:00, 11:00).
    availability = Availability("UTC", {0: [(540, 720)]})
    rules = SlotRules(30, max_days_ahead=3650)
    busy = [busy_interval(utc(2026, 6, 15, 10), utc(2026, 6, 15, 10, 30), 0, 30)]
    assert slots_for(availability, rules, MONDAY, busy=busy) == hours(
        (2026, 6, 15), (9, 0), (9, 30), (11, 0), (11, 30)
    )
    # ... and 30 min before -> busy [09:30, 10:30).
    busy = [busy_interval(utc(2026, 6, 15, 10), utc(2026, 6, 15, 10, 30), 30, 0)]
    assert slots_for(availability, rules, MONDAY, busy=busy) == hours(
        (2026, 6, 15), (9, 0), (10, 30), (11, 0), (11, 30)
    )


def test_buffer_before_reaches_a_booking_before_working_hours() -> None:
    # Hours start at 11:00; a booking 10:50-11:00 is within the 15-min buffer before 11:00.
    availability = Availability("UTC", {0: [(660, 780)]})
    rules = SlotRules(60, buffer_before_minutes=15, max_days_ahead=3650)
    busy = [Interval(utc(2026, 6, 15, 10, 50), utc(2026, 6, 15, 11))]
    assert slots_for(availability, rules, MONDAY, busy=busy) == [utc(2026, 6, 15, 12)]
    # ... while one ending at 10:45 exactly is back-to-back with the buffer.
    busy = [Interval(utc(2026, 6, 15, 10, 30), utc(2026, 6, 15, 10, 45))]
    assert slots_for(availability, rules, MONDAY, busy=busy) == hours(
        (2026, 6, 15), (11, 0), (12, 0)
    )


def test_busy_nested_inside_a_longer_busy_interval() -> None:
    # 08:00-14:00 contains 09:00-10:00; hours start at 12:00, so the first check is at 12:00
    # and must see the long interval, not only the short one that ends earlier.
    availability = Availability("UTC", {0: [(720, 1020)]})
    busy = [
        Interval(utc(2026, 6, 15, 9), utc(2026, 6, 15, 10)),
        Interval(utc(2026, 6, 15, 8), utc(2026, 6, 15, 14)),
    ]
    assert slots_for(availability, WIDE, MONDAY, busy=busy) == hours(
        (2026, 6, 15), (14, 0), (15, 0), (16, 0)
    )


def test_back_to_back_is_allowed() -> None:
    busy = [Interval(utc(2026, 6, 15, 10), utc(2026, 6, 15, 11))]
    got = slots_for(UTC_MON, WIDE, MONDAY, busy=busy)
    assert utc(2026, 6, 15, 9) in got  # ends exactly when the booking starts
    assert utc(2026, 6, 15, 10) not in got
    assert utc(2026, 6, 15, 11) in got  # starts exactly when the booking ends


def test_busy_from_another_event_type() -> None:
    # A 60-min booking at 10:00 removes 15-min slots 10:00..10:45 but not 09:45 or 11:00.
    rules = SlotRules(15, max_days_ahead=3650)
    busy = [busy_interval(utc(2026, 6, 15, 10), utc(2026, 6, 15, 11), 0, 0)]
    got = slots_for(UTC_MON, rules, MONDAY, busy=busy)
    assert len(got) == 32 - 4
    for minute in (0, 15, 30, 45):
        assert utc(2026, 6, 15, 10, minute) not in got
    assert utc(2026, 6, 15, 9, 45) in got
    assert utc(2026, 6, 15, 11) in got


def test_busy_in_other_zones_and_unsorted_and_overlapping() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    busy = [
        Interval(utc(2026, 6, 15, 15), utc(2026, 6, 15, 16)),
        # 14:30-15:30 IST = 09:00Z-10:00Z
        Interval(
            datetime(2026, 6, 15, 14, 30, tzinfo=kolkata),
            datetime(2026, 6, 15, 15, 30, tzinfo=kolkata),
        ),
        Interval(utc(2026, 6, 15, 12), utc(2026, 6, 15, 13, 30)),
        Interval(utc(2026, 6, 15, 13), utc(2026, 6, 15, 14)),
        Interval(utc(2026, 5, 1, 9), utc(2026, 5, 1, 10)),  # irrelevant, far away
    ]
    assert slots_for(UTC_MON, WIDE, MONDAY, busy=busy) == hours(
        (2026, 6, 15), (10, 0), (11, 0), (14, 0), (16, 0)
    )


def test_naive_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        slots_for(UTC_MON, WIDE, MONDAY, now=datetime(2026, 1, 1))
    naive_busy = [Interval(datetime(2026, 6, 15, 10), datetime(2026, 6, 15, 11))]
    with pytest.raises(ValueError):
        slots_for(UTC_MON, WIDE, MONDAY, busy=naive_busy)


def test_interval_smaller_than_duration() -> None:
    # 60-min sessions every 15 min: 09:00, 09:15, ..., 16:00 (29 starts).
    rules = SlotRules(60, interval_minutes=15, max_days_ahead=3650)
    got = slots_for(UTC_MON, rules, MONDAY)
    assert got == [utc(2026, 6, 15, 9) + timedelta(minutes=15 * k) for k in range(29)]
    assert got[-1] == utc(2026, 6, 15, 16)


def test_interval_larger_than_duration() -> None:
    rules = SlotRules(30, interval_minutes=120, max_days_ahead=3650)
    assert slots_for(UTC_MON, rules, MONDAY) == hours(
        (2026, 6, 15), (9, 0), (11, 0), (13, 0), (15, 0)
    )


def test_several_intervals_restart_the_grid() -> None:
    # 45-min slots: 09:00-12:00 -> 09:00, 09:45, 10:30, 11:15; the grid restarts at 13:00 (not
    # 12:45/13:30 continued from the morning): 13:00, 13:45, 14:30, 15:15, 16:00.
    availability = Availability("UTC", {0: [(780, 1020), (540, 720)]})
    rules = SlotRules(45, max_days_ahead=3650)
    assert slots_for(availability, rules, MONDAY) == hours(
        (2026, 6, 15),
        (9, 0),
        (9, 45),
        (10, 30),
        (11, 15),
        (13, 0),
        (13, 45),
        (14, 30),
        (15, 15),
        (16, 0),
    )


def test_slot_is_never_cut_by_interval_end() -> None:
    # 09:00-10:30 with 60-min slots: only 09:00 (09:30 would need until 10:30 and is off-grid).
    availability = Availability("UTC", {0: [(540, 630)]})
    assert slots_for(availability, WIDE, MONDAY) == [utc(2026, 6, 15, 9)]


@pytest.mark.parametrize(
    ("now", "first"),
    [
        # 60 min notice, 30-min grid. Exactly at the notice is offered...
        (utc(2026, 6, 15, 8), utc(2026, 6, 15, 9)),
        # ... one minute less is not.
        (utc(2026, 6, 15, 8, 1), utc(2026, 6, 15, 9, 30)),
        (utc(2026, 6, 15, 8, 30), utc(2026, 6, 15, 9, 30)),
        (utc(2026, 6, 15, 8, 30, 0, 1), utc(2026, 6, 15, 10)),
    ],
)
def test_min_notice(now: datetime, first: datetime) -> None:
    rules = SlotRules(30, min_notice_minutes=60)
    got = slots_for(UTC_MON, rules, MONDAY, now=now)
    assert got[0] == first
    assert got[-1] == utc(2026, 6, 15, 16, 30)


@pytest.mark.parametrize(
    ("now", "last"),
    [
        # max 1 day ahead: start < now + 1 day. Tue 09:00 is exactly now + 1 day: not offered.
        (utc(2026, 6, 15, 9), utc(2026, 6, 15, 16)),
        # one minute later it is.
        (utc(2026, 6, 15, 9, 1), utc(2026, 6, 16, 9)),
        (utc(2026, 6, 15, 10, 0, 0, 1), utc(2026, 6, 16, 10)),
    ],
)
def test_max_days_ahead(now: datetime, last: datetime) -> None:
    rules = SlotRules(60, max_days_ahead=1)
    got = slots_for(UTC_MON, rules, MONDAY, day_to=date(2026, 6, 17), now=now)
    assert got[-1] == last


def test_max_days_ahead_zero_and_far_ranges() -> None:
    assert slots_for(UTC_MON, SlotRules(60, max_days_ahead=0), MONDAY) == []
    # An absurd range is clipped to the horizon and stays cheap.
    rules = SlotRules(60, max_days_ahead=7)
    now = utc(2026, 6, 14)
    got = slots_for(UTC_MON, rules, date(2026, 1, 1), day_to=date(9000, 1, 1), now=now)
    assert len(got) == 5 * 8
    assert slots_for(UTC_MON, rules, date(2020, 1, 1), day_to=date(2020, 12, 31), now=now) == []


def test_now_in_any_zone() -> None:
    now = datetime(2026, 6, 15, 13, 30, tzinfo=ZoneInfo("Asia/Kolkata"))  # = 08:00Z
    rules = SlotRules(30, min_notice_minutes=60)
    assert slots_for(UTC_MON, rules, MONDAY, now=now)[0] == utc(2026, 6, 15, 9)


def test_slots_are_utc_intervals_of_the_duration() -> None:
    got = offered_slots(
        UTC_MON,
        SlotRules(45, max_days_ahead=3650),
        [],
        now=EARLY,
        day_from=MONDAY,
        day_to=MONDAY,
        viewer_tz="UTC",
    )
    assert got
    for slot in got:
        assert slot.start.tzinfo is UTC
        assert slot.end - slot.start == timedelta(minutes=45)


def test_offered_slots_rejects_bad_input() -> None:
    with pytest.raises(UnknownTimeZone):
        slots_for(UTC_MON, WIDE, MONDAY, viewer_tz="Mars/Olympus")
    with pytest.raises(ValueError):
        slots_for(UTC_MON, WIDE, MONDAY, day_to=date(2026, 6, 14))


# --------------------------------------------------------------------------- is_offered

LONDON = Availability("Europe/London", MON_FRI)
BOOKED = [busy_interval(utc(2026, 6, 15, 10), utc(2026, 6, 15, 11), 0, 0)]
RULES_30 = SlotRules(30, max_days_ahead=3650)


@pytest.mark.parametrize(
    ("start", "now", "expected"),
    [
        # Mon 15 Jun, London BST: 09:00-17:00 local = 08:00Z-16:00Z, 30-min grid
        (utc(2026, 6, 15, 8), EARLY, True),  # first slot
        (utc(2026, 6, 15, 15, 30), EARLY, True),  # last slot
        (utc(2026, 6, 15, 9, 30), EARLY, True),  # on grid, ends right when the booking starts
        (utc(2026, 6, 15, 11), EARLY, True),  # starts right when the booking ends
        (utc(2026, 6, 15, 8, 10), EARLY, False),  # off grid
        (utc(2026, 6, 15, 8, 0, 1), EARLY, False),  # off grid by a second
        (utc(2026, 6, 15, 10), EARLY, False),  # taken
        (utc(2026, 6, 15, 10, 30), EARLY, False),  # taken
        (utc(2026, 6, 15, 16), EARLY, False),  # 17:00 local: outside hours
        (utc(2026, 6, 15, 7, 30), EARLY, False),  # 08:30 local: outside hours
        (utc(2026, 6, 13, 8), EARLY, False),  # Saturday
        (utc(2026, 6, 15, 8), utc(2026, 6, 15, 8, 1), False),  # in the past
        (utc(2026, 6, 15, 8), utc(2026, 6, 15, 8), True),  # exactly now, no notice
        (datetime(2026, 6, 15, 4, tzinfo=ZoneInfo("America/New_York")), EARLY, True),
        (datetime(2026, 6, 15, 13, 30, tzinfo=ZoneInfo("Asia/Kolkata")), EARLY, True),
        (datetime(2026, 6, 15, 9, tzinfo=ZoneInfo("Europe/London")), EARLY, True),
        (datetime(2026, 6, 15, 9, 5, tzinfo=ZoneInfo("Europe/London")), EARLY, False),
    ],
)
def test_is_offered(start: datetime, now: datetime, expected: bool) -> None:
    assert is_offered(LONDON, RULES_30, BOOKED, now=now, start=start) is expected


def test_is_offered_notice_and_horizon_boundaries() -> None:
    rules = SlotRules(30, min_notice_minutes=60, max_days_ahead=1)
    start = utc(2026, 6, 15, 9)
    assert is_offered(UTC_MON, rules, [], now=utc(2026, 6, 15, 8), start=start)
    assert not is_offered(UTC_MON, rules, [], now=utc(2026, 6, 15, 8, 1), start=start)
    assert not is_offered(UTC_MON, rules, [], now=utc(2026, 6, 14, 9), start=start)
    assert is_offered(UTC_MON, rules, [], now=utc(2026, 6, 14, 9, 1), start=start)


def test_is_offered_with_buffers_and_dst_cases() -> None:
    rules = SlotRules(30, buffer_after_minutes=30, max_days_ahead=3650)
    # 09:30Z -> [09:30, 10:30) with the buffer hits the 10:00Z booking (London 10:30/11:00 BST)
    assert not is_offered(LONDON, rules, BOOKED, now=EARLY, start=utc(2026, 6, 15, 9, 30))
    assert is_offered(LONDON, rules, BOOKED, now=EARLY, start=utc(2026, 6, 15, 9))
    # repeated local hour: both 00:00Z and 01:00Z are offered on 25 Oct 2026
    autumn = Availability("Europe/London", {6: [(60, 120)]})
    for hour in (0, 1):
        assert is_offered(autumn, WIDE, [], now=EARLY, start=utc(2026, 10, 25, hour))
    assert not is_offered(autumn, WIDE, [], now=EARLY, start=utc(2026, 10, 25, 2))


def test_is_offered_rejects_naive_start() -> None:
    with pytest.raises(ValueError):
        is_offered(LONDON, RULES_30, [], now=EARLY, start=datetime(2026, 6, 15, 8))
