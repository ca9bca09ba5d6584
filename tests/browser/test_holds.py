"""Live holds in Chromium: one browser picks a time, another sees it held within a second,
then free again when the first goes back."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.conftest import assert_accessible, shots
from tests.browser.test_booking_flows import booking_page, day_after_tomorrow, new_expert

pytestmark = pytest.mark.browser


def test_a_picked_time_shows_held_elsewhere_and_frees_on_back(new_context, live_server):
    expert = new_expert(live_server)
    day = day_after_tomorrow()
    picker = booking_page(new_context(), expert, day)
    other = booking_page(new_context(), expert, day)
    start = picker.locator("a.slot").nth(2).get_attribute("data-start")
    picker.click(f"a.slot[data-start='{start}']")
    picker.wait_for_url(re.compile(r"/book\?"))
    picked = time.monotonic()
    # The other browser: held within 1 s, not a link, said in words and in the live region.
    held = other.locator(f".slot.held[data-start='{start}']")
    held.wait_for(timeout=1000)
    assert time.monotonic() - picked <= 1.0
    assert "Someone is booking this time" in held.inner_text()
    assert held.get_attribute("aria-disabled") == "true"
    assert other.locator(f"a.slot[data-start='{start}']").count() == 0
    other.locator(".toast-region .toast", has_text="someone is booking this time").wait_for(
        timeout=2000
    )
    assert_accessible(other, "booking page with a held time")
    shots(other, "slot-held-live")
    # The picker's page counts down its hold.
    status = picker.locator("[data-role='hold-status']")
    picker.wait_for_function(
        "() => /holding this time for you: [45]:\\d\\d/.test("
        "document.querySelector(\"[data-role='hold-status']\").textContent)",
        timeout=3000,
    )
    assert "holding this time for you" in status.inner_text()
    # A third browser opening that confirm step is told someone else is booking it.
    watching = new_context()
    watching.guard.expected_errors = ("status of 409",)  # the page answers 409 slot_held
    third = watching.new_page()
    third.goto(picker.url)
    assert "Someone else is booking this time right now" in third.inner_text("main")
    third.close()
    # The picker goes back: the time is free again for the other browser, live.
    picker.click("a[data-role='back'] >> nth=0")
    picker.wait_for_url(re.compile(r"\?date="))
    went_back = time.monotonic()
    other.locator(f"a.slot[data-start='{start}']").wait_for(timeout=2000)
    assert time.monotonic() - went_back <= 2.0
    assert other.locator(f".slot.held[data-start='{start}']").count() == 0
