"""Times on pages and in mails: the viewer's zone, and clock changes that read right."""

from datetime import UTC, datetime, timedelta

import pytest

from expertbook.templating import localtime, timerange

HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    "start, tz, text",
    [
        # An ordinary day: no abbreviations.
        (datetime(2027, 6, 1, 8, tzinfo=UTC), "Europe/Berlin", "Tue 01 Jun 2027, 10:00 – 11:00"),
        # Spring forward: one hour that looks like two without the offsets.
        (datetime(2027, 3, 28, 0, 30, tzinfo=UTC), "Europe/Berlin",
         "Sun 28 Mar 2027, 01:30 CET – 03:30 CEST"),
        # Fall back: one hour that looks like none.
        (datetime(2027, 11, 7, 5, 30, tzinfo=UTC), "America/New_York",
         "Sun 07 Nov 2027, 01:30 EDT – 01:30 EST"),
        # Both ends inside the repeated hour: same offset, but the clock time happens twice.
        (datetime(2027, 10, 31, 0, 10, tzinfo=UTC), "Europe/Berlin",
         "Sun 31 Oct 2027, 02:10 CEST – 02:10 CET"),
        # A zone whose abbreviation is a number in tzdata.
        (datetime(2027, 6, 1, 12, tzinfo=UTC), "America/Sao_Paulo",
         "Tue 01 Jun 2027, 09:00 – 10:00"),
    ],
)  # fmt: skip
def test_timerange(start, tz, text):
    assert timerange(start, start + HOUR, tz) == text


def test_timerange_without_the_day():
    start = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)
    assert timerange(start, start + HOUR, "Europe/Berlin", "") == "01:30 CET – 03:30 CEST"


def test_a_clock_time_that_happens_twice_names_its_offset():
    first = datetime(2027, 11, 7, 5, 30, tzinfo=UTC)
    times = [localtime(first + n * HOUR, "America/New_York", "%H:%M") for n in range(-1, 3)]
    assert times == ["00:30", "01:30 EDT", "01:30 EST", "02:30"]
    assert localtime(first, "America/New_York", "%d %b") == "07 Nov"  # no time, no offset


def test_an_offset_only_abbreviation_reads_as_utc_offset():
    start = datetime(2027, 6, 1, 12, tzinfo=UTC)
    assert timerange(start, start + HOUR, "America/Sao_Paulo") == "Tue 01 Jun 2027, 09:00 – 10:00"
    # Santiago has no letters in tzdata either; its clocks go back at 03:00 UTC.
    change = datetime(2027, 4, 4, 3, tzinfo=UTC)
    assert timerange(change - HOUR, change + HOUR, "America/Santiago", "") == (
        "23:00 UTC-03 – 00:00 UTC-04"
    )


def test_a_half_hour_offset_reads_with_a_colon():
    # Lord Howe's clocks go back half an hour, at 02:00 local (15:00 UTC), to +10:30.
    change = datetime(2027, 4, 3, 15, tzinfo=UTC)
    assert timerange(change - HOUR, change + HOUR, "Australia/Lord_Howe", "") == (
        "01:00 UTC+11 – 02:30 UTC+10:30"
    )
