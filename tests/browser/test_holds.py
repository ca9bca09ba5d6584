"""Live holds in Chromium: one browser picks a time, another sees it held within a second,
then free again when the first goes back."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from tests.browser.conftest import assert_accessible, shots
from tests.browser.test_booking_flows import booking_page, day_after_tomorrow, new_expert

pytestmark = pytest.mark.browser


def held_starts(server, username: str) -> list[str]:
    """The starts of the holds of `username` on the live server, as the pages write them.
    Only that expert's: the other tests' pages (same server) leave holds that live on for
    the disconnect grace, at the same times of day."""
    from config import normalize_database_url

    engine = sa.create_engine(normalize_database_url(server.site.database_url))
    query = sa.text(
        'SELECT h.start_at FROM slot_hold h JOIN "user" u ON u.id = h.expert_id'
        " WHERE u.username = :username ORDER BY h.start_at"
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"username": username}).scalars().all()
    engine.dispose()
    return [str(row)[:19].replace(" ", "T") + "Z" for row in rows]


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


def another_day(day: str) -> str:
    """A day next to `day` in the same month (the day after, else the day before)."""
    first = date.fromisoformat(day)
    after = first + timedelta(days=1)
    return (after if after.month == first.month else first - timedelta(days=1)).isoformat()


def test_a_time_held_on_another_day_shows_held_when_that_day_is_opened(new_context, live_server):
    """Finding 11: the page notes every announced hold, not only those of the day drawn."""
    expert = new_expert(live_server)
    day = day_after_tomorrow()
    other_day = another_day(day)
    other = booking_page(new_context(), expert, day)
    watcher = booking_page(new_context(), expert, other_day)
    picker = booking_page(new_context(), expert, other_day)
    start = picker.locator("a.slot").nth(3).get_attribute("data-start")
    picker.click(f"a.slot[data-start='{start}']")
    picker.wait_for_url(re.compile(r"/book\?"))
    watcher.locator(f".slot.held[data-start='{start}']").wait_for(timeout=2000)
    time.sleep(0.3)  # the same announcement has reached `other`, showing another day
    other.click(f"a.cal-day[data-date='{other_day}']")
    held = other.locator(f".slot.held[data-start='{start}']")
    held.wait_for(timeout=1000)
    assert "Someone is booking this time" in held.inner_text()
    assert other.locator(f"a.slot[data-start='{start}']").count() == 0
    # A renewal is announced again and keeps it held; the holder going back frees it.
    picker.evaluate(RENEW)
    time.sleep(0.5)
    assert held.count() == 1
    picker.click("a[data-role='back'] >> nth=0")
    other.locator(f"a.slot[data-start='{start}']").wait_for(timeout=2000)


RENEW = (
    "async () => { const d = document.getElementById('confirm').dataset;"
    " await fetch(`${d.holdUrl}${d.holdId}/renew`, {method: 'POST', headers:"
    " {'X-Hold-Token': d.holdToken, 'X-CSRFToken':"
    " document.querySelector('meta[name=csrf-token]').content}}); }"
)


def later(page, minutes: float) -> None:
    """Move the page's Date.now() `minutes` on (its timers and socket keep real time)."""
    page.evaluate(
        "(ms) => { const now = Date.now; Date.now = () => now() + ms; }", minutes * 60_000
    )


def test_a_renewed_hold_stays_held_past_its_first_expiry(new_context, live_server):
    """Finding 3: other pages keep a time held while its holder renews (each renewal is
    announced), not only until the expiry first announced."""
    expert = new_expert(live_server)
    day = day_after_tomorrow()
    other = booking_page(new_context(), expert, day)
    picker = booking_page(new_context(), expert, day)
    start = picker.locator("a.slot").nth(2).get_attribute("data-start")
    picker.click(f"a.slot[data-start='{start}']")
    picker.wait_for_selector("#confirm[data-bound='true']")
    held = other.locator(f".slot.held[data-start='{start}']")
    held.wait_for(timeout=2000)
    for _ in range(2):  # twice the hold's 5 minutes, renewed on the way
        later(other, 5.5)
        picker.evaluate(RENEW)
        time.sleep(0.5)
    later(other, 3)
    other.click(f"a.cal-day[data-date='{day}']")  # draws the day again
    time.sleep(0.3)
    assert held.count() == 1
    assert other.locator(f"a.slot[data-start='{start}']").count() == 0


def test_two_tabs_of_one_browser_do_not_fight_over_the_hold(new_context, live_server):
    """Finding 12: the tab whose hold another tab replaced says so and holds nothing again."""
    expert = new_expert(live_server)
    day = day_after_tomorrow()
    context = new_context()
    context.guard.expected_errors = ("status of 404",)  # the first tab's check of its hold
    first = booking_page(context, expert, day)
    second = booking_page(context, expert, day)
    one = first.locator("a.slot").nth(1).get_attribute("data-start")
    two = second.locator("a.slot").nth(4).get_attribute("data-start")
    first.click(f"a.slot[data-start='{one}']")
    first.wait_for_selector("#confirm[data-bound='true']")
    second.click(f"a.slot[data-start='{two}']")
    second.wait_for_selector("#confirm[data-bound='true']")
    first.wait_for_selector("#confirm[data-lost='true']", timeout=3000)
    status = first.locator("[data-role='hold-status']").inner_text()
    assert "no longer held for you" in status
    time.sleep(1.5)  # nothing more happens: the first tab does not hold its time again
    assert held_starts(live_server, expert["username"]) == [two]
    assert "holding this time for you" in second.locator("[data-role='hold-status']").inner_text()


def test_a_background_tab_renews_its_hold_until_its_longest_life(new_context, live_server):
    """Finding 10: renewal goes on while the page is hidden; past the hold's longest life
    (409) the page says the time is no longer held and stops renewing."""
    expert = new_expert(live_server)
    context = new_context()
    context.guard.expected_errors = ("status of 409",)
    page = context.new_page()
    page.clock.install()
    page.goto(f"/{expert['username']}/{expert['slug']}?date={day_after_tomorrow()}")
    page.locator("a.slot").first.click()
    page.wait_for_selector("#confirm[data-bound='true']")
    page.evaluate(
        "() => { for (const [name, value] of [['visibilityState', 'hidden'], ['hidden', true]])"
        " Object.defineProperty(document, name, {configurable: true, get: () => value});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )

    def renewed(request) -> bool:
        return request.method == "POST" and request.url.endswith("/renew")

    with page.expect_response(lambda response: renewed(response.request)) as answer:
        page.clock.fast_forward("03:30")
    assert answer.value.status == 200
    # Past the server's cap on a hold's life, a renewal answers 409.
    page.route(
        "**/renew",
        lambda route: route.fulfill(
            status=409,
            content_type="application/json",
            body='{"error": {"code": "hold_expired", "message": "This hold has ended."}}',
        ),
    )
    with page.expect_request(renewed):
        page.clock.fast_forward("04:00")
    page.wait_for_selector("#confirm[data-lost='true']")
    assert "no longer held for you; book now if it is still free or go back" in (
        page.locator("[data-role='hold-status']").inner_text()
    )
    calls = []
    page.on("request", lambda r: renewed(r) and calls.append(r))
    page.clock.fast_forward("05:00")
    time.sleep(0.5)
    assert calls == []
