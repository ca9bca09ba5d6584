"""Issue 16 in Chromium: what a newcomer trips over (time zones, going back after booking,
stale or lost input, keyboard and phone use)."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from tests.browser.conftest import PHONE, assert_accessible
from tests.browser.test_booking_flows import (
    booking_page,
    day_after_tomorrow,
    fill_and_confirm,
    new_expert,
    sign_up,
    wait_for_join,
    wait_until,
)

pytestmark = pytest.mark.browser


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


def focused(page) -> dict:
    return page.evaluate(
        "({date: document.activeElement.dataset.date || null,"
        " slot: document.activeElement.classList.contains('slot')})"
    )


def test_the_month_is_one_tab_stop_with_arrow_keys(new_context, live_server):
    """Finding 9: the WAI-ARIA date-picker grid, then the focus goes to the times."""
    expert = new_expert(live_server)
    target = day_after_tomorrow()
    page = booking_page(new_context(), expert, target)
    page.focus("[data-nav=next]")
    page.keyboard.press("Tab")
    start = focused(page)["date"]
    assert start == target  # the chosen day holds the one Tab stop
    page.keyboard.press("Tab")
    assert focused(page)["date"] is None  # out of the month in one step
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("ArrowRight")
    assert focused(page)["date"] == (date.fromisoformat(start) + timedelta(days=1)).isoformat()
    page.keyboard.press("ArrowDown")
    assert focused(page)["date"] == (date.fromisoformat(start) + timedelta(days=8)).isoformat()
    page.keyboard.press("Home")
    assert date.fromisoformat(focused(page)["date"]).weekday() == 0
    page.keyboard.press("End")
    assert date.fromisoformat(focused(page)["date"]).weekday() == 6
    shown = focused(page)["date"]
    page.keyboard.press("PageDown")  # the next month, same day number where it has one
    assert wait_until(lambda: (focused(page)["date"] or "") > f"{shown[:7]}-99", within=3)
    page.keyboard.press("PageUp")
    assert wait_until(lambda: (focused(page)["date"] or "").startswith(shown[:7]), within=3)
    here = date.fromisoformat(focused(page)["date"])
    steps = (date.fromisoformat(target) - here).days
    for _ in range(abs(steps)):
        page.keyboard.press("ArrowRight" if steps > 0 else "ArrowLeft")
    assert focused(page)["date"] == target
    page.keyboard.press("Enter")
    assert wait_until(lambda: focused(page)["slot"], within=3)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/book\?"))


def test_on_a_phone_the_times_come_into_view(new_context, live_server):
    """Finding 8: after tapping a day at 375 px the times are on the screen."""
    expert = new_expert(live_server)
    page = booking_page(new_context(viewport=PHONE, has_touch=True), expert, day_after_tomorrow())
    other = (date.fromisoformat(day_after_tomorrow()) + timedelta(days=1)).isoformat()
    page.tap(f"a.cal-day[data-date='{other}']")
    in_view = (
        "(() => { const r = document.querySelector('[data-role=day-title]')"
        ".getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; })()"
    )
    assert wait_until(lambda: page.evaluate(in_view), within=3), "the times stayed below the fold"
    assert page.locator("a.slot").first.is_visible()


def test_the_live_notice_names_what_changed_on_this_page(new_context, live_server):
    """Finding 13 and the aria-live region: a 30-minute booking at 09:30 of one event type
    takes 09:00 away from the 60-minute type's page, and the notice says so."""
    hour = {"title": "Full hour", "slug": "full-hour", "duration_minutes": 60}
    expert = new_expert(live_server, more_types=[hour])
    day = day_after_tomorrow()
    context = new_context(reduced_motion="reduce")
    page = context.new_page()
    page.goto(f"/{expert['username']}/full-hour?date={day}&tz=UTC")
    wait_for_join(page)
    assert_accessible(page, "booking page")
    status, body = live_server.request(
        "POST",
        f"/api/v1/event-types/{expert['event_type_id']}/bookings",
        {"start": f"{day}T09:30:00Z", "name": "Other type", "email": "other@example.com"},
    )
    assert status == 201, body
    toast = page.locator(".toast-region .toast").first
    toast.wait_for(timeout=3000)
    assert toast.inner_text() == "09:00 is no longer available"
    assert page.get_attribute(".toast-region", "aria-live") == "polite"
    assert page.evaluate(
        "getComputedStyle(document.querySelector('.toast')).animationDuration"
    ) in ("1e-05s", "0.00001s", "0s")
    assert_accessible(page, "booking page after a live update")
