"""Issue 16 in Chromium: what a newcomer trips over (time zones, going back after booking,
stale or lost input, keyboard and phone use)."""

from __future__ import annotations

import re
import time
from itertools import count

import pytest

from tests.browser.test_booking_flows import (
    booking_page,
    day_after_tomorrow,
    fill_and_confirm,
    new_expert,
    wait_for_join,
)

pytestmark = pytest.mark.browser
_names = count(1)


def sign_up(page, *, zone_hint: str | None = None) -> str:
    """Sign up on the page and log in; returns the username."""
    name = f"newbie{next(_names)}{int(time.time() * 1000) % 100000}"
    page.goto("/auth/register")
    if zone_hint:
        assert page.input_value("select[name=timezone]") == zone_hint
    page.fill("input[name=username]", name)
    page.fill("input[name=email]", f"{name}@example.com")
    page.fill("input[name=password]", "newbie-password")
    page.fill("input[name=confirm]", "newbie-password")
    page.click("button:has-text('Sign up')")
    page.wait_for_url(re.compile("/auth/login$"))
    page.fill("input[name=login]", name)
    page.fill("input[name=password]", "newbie-password")
    page.click("button:has-text('Log in')")
    page.wait_for_url(re.compile("/bookings$"))
    return name


def test_sign_up_takes_the_browsers_zone_and_every_time_names_it(new_context, live_server):
    """Finding 1: a client in Los Angeles who booked 01:00 sees 01:00, not 09:00 (UTC)."""
    expert = new_expert(live_server)
    page = new_context(timezone_id="America/Los_Angeles").new_page()
    sign_up(page, zone_hint="America/Los_Angeles")
    page.goto("/profile")
    assert page.input_value("select[name=timezone]") == "America/Los_Angeles"
    page.goto(f"/{expert['username']}/{expert['slug']}?date={day_after_tomorrow()}")
    wait_for_join(page)
    first = page.locator("a.slot").first
    local = first.inner_text().strip()  # 09:00 UTC: 01:00 or 02:00 in Los Angeles
    assert local in ("01:00", "02:00")
    first.click()
    page.click("button:has-text('Confirm booking')")
    page.wait_for_url(re.compile(r"/bookings/"))
    assert f"{local} –" in page.inner_text(".detail-list")
    assert "America/Los Angeles" in page.inner_text(".detail-list")
    page.goto("/bookings")
    card = page.locator(".booking-card").first
    assert card.locator(".booking-time").inner_text().startswith(f"{local} –")
    assert "America/Los Angeles" in card.inner_text()


def test_a_kolkata_browser_reads_asia_kolkata_everywhere(new_context, live_server):
    """Finding 15: canonical names, one spelling, and no redundant "Show times"."""
    expert = new_expert(live_server)
    context = new_context(timezone_id="Asia/Kolkata")
    page = booking_page(context, expert, day_after_tomorrow())
    hint = page.locator("[data-role=tz-name]")
    page.wait_for_function("document.querySelector('[data-role=tz-name]').textContent !== 'UTC'")
    assert hint.inner_text() == "Asia/Kolkata"
    assert page.input_value("select#tz") == "Asia/Kolkata"
    assert page.locator("select#tz option:checked").inner_text() == hint.inner_text()
    assert not page.is_visible("button:has-text('Show times')")
    # The menu on another page spells it the same way.
    register = context.new_page()
    register.goto("/auth/register")
    assert register.input_value("select[name=timezone]") == "Asia/Kolkata"
    label = register.locator("select[name=timezone] option:checked").inner_text()
    assert label == "Asia/Kolkata"


def test_back_after_booking_says_you_booked_it(new_context, live_server):
    """Finding 2: Back from the confirmation is not "no longer available"."""
    expert = new_expert(live_server)
    page = booking_page(new_context(), expert, day_after_tomorrow())
    page.locator("a.slot").first.click()
    page.wait_for_url(re.compile(r"/book\?"))
    fill_and_confirm(page)
    page.wait_for_url(re.compile(r"/bookings/[0-9a-f]+\?token="))
    confirmation = page.url
    page.go_back()
    page.wait_for_selector("text=You have booked this time")
    assert page.locator("text=no longer available").count() == 0
    page.click("a:has-text('See your booking')")
    page.wait_for_url(confirmation)
