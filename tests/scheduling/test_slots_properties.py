"""Property tests for expertbook.scheduling: invariants over random hours, zones and bookings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expertbook.scheduling import (
    Availability,
    Interval,
    SlotRules,
    day_window,
    is_offered,
    offered_slots,
    working_intervals,
    zone,
)

ZONES = [
    "Europe/London",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "UTC",
    "Pacific/Chatham",
]
# Requests start within a few weeks after one of these dates, so the drawn ranges cover the DST
# changes: New York 8 Mar and 1 Nov, London 29 Mar and 25 Oct, Lord Howe and Chatham 5 Apr,
# Chatham 27 Sep, Lord Howe 4 Oct (all 2026).
ANCHORS = [date(2026, 3, 1), date(2026, 3, 20), date(2026, 9, 20), date(2026, 10, 18)]
PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def day_hours(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Valid, non-overlapping intervals for one day (boundaries may coincide: back-to-back)."""
    points = draw(
        st.lists(
            st.integers(0, 1440 // 15).map(lambda q: q * 15) | st.integers(0, 1440),
            min_size=0,
            max_size=6,
            unique=True,
        )
    )
    points.sort()
    pairs = list(zip(points[::2], points[1::2], strict=False))
    # Occasionally join two intervals back-to-back.
    if len(pairs) >= 2 and draw(st.booleans()):
        pairs[1] = (pairs[0][1], pairs[1][1])
    return pairs


@st.composite
def availabilities(draw: st.DrawFn, anchor: date) -> Availability:
    weekly = {weekday: draw(day_hours()) for weekday in range(7) if draw(st.integers(0, 4))}
    override_days = draw(st.lists(st.integers(-3, 30), max_size=4, unique=True))
    overrides = {anchor + timedelta(days=n): draw(day_hours()) for n in override_days}
    return Availability(draw(st.sampled_from(ZONES)), weekly, overrides)


rules_strategy = st.builds(
    SlotRules,
    duration_minutes=st.sampled_from([5, 15, 25, 30, 45, 60, 90, 120, 240]),
    interval_minutes=st.none() | st.sampled_from([5, 10, 15, 20, 30, 45, 60, 75]),
    buffer_before_minutes=st.sampled_from([0, 0, 5, 10, 15, 30, 60]),
    buffer_after_minutes=st.sampled_from([0, 0, 5, 10, 15, 30, 60]),
    min_notice_minutes=st.sampled_from([0, 0, 30, 60, 240, 1440, 2881]),
    max_days_ahead=st.sampled_from([0, 1, 3, 60, 60, 60]) | st.integers(0, 40),
)


@st.composite
def requests(draw: st.DrawFn, anchor: date) -> dict:
    day_from = anchor + timedelta(days=draw(st.integers(-2, 20)))
    day_to = day_from + timedelta(days=draw(st.integers(0, 6)))
    # Mostly shortly before the requested days, so notice and horizon cut into the results.
    before_minutes = draw(st.integers(-2 * 1440, 6 * 1440))
    now = datetime.combine(day_from, datetime.min.time(), UTC) - timedelta(minutes=before_minutes)
    return {
        "now": now,
        "day_from": day_from,
        "day_to": day_to,
        "viewer_tz": draw(st.sampled_from(ZONES)),
    }


@st.composite
def busy_near(draw: st.DrawFn, request: dict) -> list[Interval]:
    """Busy intervals around the requested days: dense, often on 15-minute boundaries."""
    origin = datetime.combine(request["day_from"], datetime.min.time(), UTC) - timedelta(days=1)
    span = ((request["day_to"] - request["day_from"]).days + 3) * 1440
    offsets = st.integers(0, span // 15).map(lambda q: q * 15) | st.integers(0, span)
    lengths = st.sampled_from([15, 30, 45, 60, 90]) | st.integers(1, 300)
    return [
        Interval(origin + timedelta(minutes=o), origin + timedelta(minutes=o + n))
        for o, n in draw(st.lists(st.tuples(offsets, lengths), max_size=60))
    ]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Availability, SlotRules, list[Interval], dict]:
    anchor = draw(st.sampled_from(ANCHORS))
    request = draw(requests(anchor))
    availability = draw(availabilities(anchor))
    busy = draw(busy_near(request))
    # Bookings ending or starting right around working-interval edges exercise the first
    # candidate of each interval, which the skip-ahead in the fast path never jumps over.
    edges = [
        edge
        for iv in working_intervals(
            availability,
            request["day_from"] - timedelta(days=1),
            request["day_to"] + timedelta(days=1),
        )
        for edge in (iv.start, iv.end)
    ]
    if edges:
        for _ in range(draw(st.integers(0, 8))):
            edge = draw(st.sampled_from(edges))
            shift = timedelta(minutes=draw(st.integers(-90, 90)))
            length = timedelta(minutes=draw(st.sampled_from([5, 15, 30, 60, 240])))
            busy.append(Interval(edge + shift, edge + shift + length))
    return availability, draw(rules_strategy), busy, request


def _expert_intervals_around(availability: Availability, start: datetime) -> list[Interval]:
    local_day = start.astimezone(zone(availability.timezone)).date()
    return working_intervals(availability, local_day - timedelta(days=1), local_day + timedelta(1))


def _reference(
    availability: Availability, rules: SlotRules, busy: list[Interval], request: dict
) -> list[datetime]:
    """A deliberately naive O(slots x bookings) implementation of the contract."""
    window = day_window(request["day_from"], request["day_to"], request["viewer_tz"])
    now = request["now"]
    tz = zone(availability.timezone)
    first = window.start.astimezone(tz).date() - timedelta(days=2)
    last = window.end.astimezone(tz).date() + timedelta(days=2)
    duration = timedelta(minutes=rules.duration_minutes)
    step = timedelta(minutes=rules.interval_minutes or rules.duration_minutes)
    found: set[datetime] = set()
    for interval in working_intervals(availability, first, last):
        start = interval.start
        while start + duration <= interval.end:
            widened = Interval(
                start - timedelta(minutes=rules.buffer_before_minutes),
                start + duration + timedelta(minutes=rules.buffer_after_minutes),
            )
            if (
                window.start <= start < window.end
                and start >= now + timedelta(minutes=rules.min_notice_minutes)
                and start < now + timedelta(days=rules.max_days_ahead)
                and not any(widened.overlaps(b) for b in busy)
            ):
                found.add(start)
            start += step
    return sorted(found)


@PROPERTY_SETTINGS
@given(scenarios())
def test_offered_slots_invariants(
    scenario: tuple[Availability, SlotRules, list[Interval], dict],
) -> None:
    availability, rules, busy, request = scenario
    slots = offered_slots(availability, rules, busy, **request)
    window = day_window(request["day_from"], request["day_to"], request["viewer_tz"])
    duration = timedelta(minutes=rules.duration_minutes)
    step = timedelta(minutes=rules.interval_minutes or rules.duration_minutes)
    before = timedelta(minutes=rules.buffer_before_minutes)
    after = timedelta(minutes=rules.buffer_after_minutes)
    now = request["now"]

    starts = [slot.start for slot in slots]
    assert starts == sorted(set(starts)), "sorted and unique"
    for slot in slots:
        assert slot.start.tzinfo is UTC
        assert slot.end - slot.start == duration
        assert window.start <= slot.start < window.end
        assert now + timedelta(minutes=rules.min_notice_minutes) <= slot.start
        assert slot.start < now + timedelta(days=rules.max_days_ahead)
        widened = Interval(slot.start - before, slot.end + after)
        assert not any(widened.overlaps(b) for b in busy)
        assert any(
            iv.start <= slot.start
            and slot.end <= iv.end
            and (slot.start - iv.start) % step == timedelta(0)
            for iv in _expert_intervals_around(availability, slot.start)
        ), "inside a working interval, on its grid"
        assert is_offered(availability, rules, busy, now=now, start=slot.start)


@PROPERTY_SETTINGS
@given(scenarios())
def test_offered_slots_match_naive_reference(
    scenario: tuple[Availability, SlotRules, list[Interval], dict],
) -> None:
    availability, rules, busy, request = scenario
    got = [slot.start for slot in offered_slots(availability, rules, busy, **request)]
    assert got == _reference(availability, rules, busy, request)


@PROPERTY_SETTINGS
@given(scenarios(), st.integers(0, 9 * 1440 // 5).map(lambda q: q * 5), st.sampled_from(ZONES))
def test_is_offered_agrees_with_offered_slots(
    scenario: tuple[Availability, SlotRules, list[Interval], dict],
    offset_minutes: int,
    input_zone: str,
) -> None:
    # Any instant (given in any zone) is offered exactly when offered_slots lists it for the
    # viewer day that contains it.
    availability, rules, busy, request = scenario
    origin = datetime.combine(request["day_from"], datetime.min.time(), UTC) - timedelta(days=1)
    start = (origin + timedelta(minutes=offset_minutes)).astimezone(zone(input_zone))
    viewer_day = start.astimezone(zone(request["viewer_tz"])).date()
    listed = offered_slots(
        availability,
        rules,
        busy,
        now=request["now"],
        day_from=viewer_day,
        day_to=viewer_day,
        viewer_tz=request["viewer_tz"],
    )
    # Compare in UTC: PEP 495 makes inter-zone equality false for times inside a fold.
    expected = start.astimezone(UTC) in {slot.start for slot in listed}
    assert is_offered(availability, rules, busy, now=request["now"], start=start) is expected


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ZONES), st.dates(date(2020, 1, 1), date(2035, 12, 31)), st.integers(0, 3))
def test_day_windows_tile_without_gaps(tz: str, day: date, extra_days: int) -> None:
    # Consecutive single-day windows tile the multi-day window exactly.
    whole = day_window(day, day + timedelta(days=extra_days), tz)
    pieces = [day_window(day + timedelta(d), day + timedelta(d), tz) for d in range(extra_days + 1)]
    assert pieces[0].start == whole.start and pieces[-1].end == whole.end
    for left, right in zip(pieces, pieces[1:], strict=False):
        assert left.end == right.start
    for piece in pieces:
        assert timedelta(hours=22) <= piece.end - piece.start <= timedelta(hours=26)
