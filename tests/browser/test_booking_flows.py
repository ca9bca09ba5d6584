"""The booking experience in Chromium: book, live grey-out, the just-taken path, cancel."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
import requests

from tests.browser.conftest import PHONE, shots
from tests.mail_inbox import link_in

pytestmark = pytest.mark.browser
_names = count(1)
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def new_expert(
    server,
    *,
    title="Deep dive",
    duration=30,
    hours=(("09:00", "17:00"),),
    more_types=(),
    **fields,
) -> dict:
    """Register an expert over HTTP (forms, the confirmation link from the mail, then the
    session-authenticated API) with hours in UTC every day and one event type (and the
    `more_types`, each a dict of API fields); returns its names and ids."""
    username = f"expert{next(_names)}{int(time.time() * 1000) % 100000}"
    http = requests.Session()
    token = csrf_of(http.get(f"{server.url}/auth/register", timeout=10).text)
    http.post(
        f"{server.url}/auth/register",
        data={"csrf_token": token, "username": username, "email": f"{username}@example.com",
              "password": "expert-password", "confirm": "expert-password"},
        timeout=10,
    )  # fmt: skip
    token = csrf_of(http.get(f"{server.url}/auth/login", timeout=10).text)
    http.post(
        f"{server.url}/auth/login",
        data={"csrf_token": token, "login": username, "password": "expert-password"},
        timeout=10,
    )
    (mail,) = server.inbox.wait_for(f"{username}@example.com")
    http.get(server.url + link_in(mail, "/auth/verify/"), timeout=10)
    token = csrf_of(http.get(f"{server.url}/profile", timeout=10).text)
    http.post(
        f"{server.url}/profile",
        data={"csrf_token": token, "name": "Dana Okafor", "timezone": "UTC",
              "bio": "Product coach: roadmaps, discovery and team rituals."},
        timeout=10,
    )  # fmt: skip
    http.post(f"{server.url}/profile/become-expert", data={"csrf_token": token}, timeout=10)
    headers = {"X-CSRFToken": token}
    weekly = {day: [list(interval) for interval in hours] for day in WEEK}
    response = http.put(
        f"{server.url}/api/v1/availability",
        json={"timezone": "UTC", "weekly": weekly},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    response = http.post(
        f"{server.url}/api/v1/event-types",
        json={"title": title, "slug": "deep-dive", "duration_minutes": duration, **fields},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    made = {"username": username, "event_type_id": response.json()["id"], "slug": "deep-dive"}
    made["more"] = []
    for extra in more_types:
        response = http.post(
            f"{server.url}/api/v1/event-types", json=extra, headers=headers, timeout=10
        )
        assert response.status_code == 201, response.text
        made["more"].append({"event_type_id": response.json()["id"], "slug": extra["slug"]})
    http.close()  # its pooled connections, before the garbage collector finds them open
    return made


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


def day_after_tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=2)).date().isoformat()


def booking_page(context, expert, day: str):
    page = context.new_page()
    page.goto(f"/{expert['username']}/{expert['slug']}?date={day}")
    wait_for_join(page)
    return page


def wait_for_join(page, timeout: float = 5) -> None:
    """booking.js marks the page once its socket has joined the room (data-live="true")."""
    page.wait_for_selector("#booking[data-live='true']", timeout=timeout * 1000)


def wait_until(condition, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def fill_and_confirm(page, name="Grace Hopper", email="grace@example.com", notes="Agenda: COBOL"):
    page.fill("input[name=name]", name)
    page.fill("input[name=email]", email)
    page.fill("textarea[name=notes]", notes)
    page.click("button:has-text('Confirm booking')")


def test_a_client_books_and_downloads_the_calendar_file(new_context, live_server):
    expert = new_expert(live_server)
    context = new_context(timezone_id="America/New_York")
    page = booking_page(context, expert, day_after_tomorrow())
    shots(page, "booking-page")
    first = page.locator("a.slot").first
    start = first.get_attribute("data-start")
    # 09:00 UTC is shown in the visitor's zone (New York: 04:00 or 05:00).
    assert first.inner_text().strip() in ("04:00", "05:00")
    first.click()
    page.wait_for_url(re.compile(r"/book\?"))
    shots(page, "confirm")
    fill_and_confirm(page)
    page.wait_for_url(re.compile(r"/bookings/[0-9a-f]+\?token="))
    video = page.locator("a.video-link")
    assert re.match(r"https://zoom\.us/j/\d{11}\?pwd=", video.inner_text())
    shots(page, "confirmation")
    with page.expect_download() as download_info:
        page.click("text=Add to calendar (.ics)")
    body = Path(download_info.value.path()).read_text(encoding="utf-8")
    assert "BEGIN:VCALENDAR" in body and "METHOD:PUBLISH" in body
    dtstart = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").strftime("DTSTART:%Y%m%dT%H%M%SZ")
    assert dtstart in body


def expire_holds(server) -> None:
    """Let every hold run out now (the server's sweeper ends them within seconds)."""
    import sqlalchemy as sa

    from config import normalize_database_url

    engine = sa.create_engine(normalize_database_url(server.site.database_url))
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE slot_hold SET expires_at = :past"),
            {"past": "2000-01-01 00:00:00.000000"},
        )
    engine.dispose()


def test_a_slot_greys_out_live_and_the_loser_gets_just_taken(new_context, live_server):
    expert = new_expert(live_server)
    day = day_after_tomorrow()
    watcher = booking_page(new_context(), expert, day)
    losing = new_context(viewport=PHONE)
    # Its hold's end is announced: the confirm step checks the hold, which is gone (404).
    losing.guard.expected_errors = ("status of 404",)
    loser = booking_page(losing, expert, day)
    winner = booking_page(new_context(), expert, day)
    start = winner.locator("a.slot").nth(1).get_attribute("data-start")
    # The loser clicked first: it is on the confirm step when the winner books. Its hold of
    # the time has run out (left alone, say): the time is offered again, live.
    loser.click(f"a.slot[data-start='{start}']")
    loser.wait_for_url(re.compile(r"/book\?"))
    winner.wait_for_selector(f".slot.held[data-start='{start}']")
    loser.wait_for_selector("#confirm[data-bound='true']")
    expire_holds(live_server)
    winner.click(f"a.slot[data-start='{start}']", timeout=10_000)
    fill_and_confirm(winner, name="Winner", email="winner@example.com")
    winner.wait_for_url(re.compile(r"/bookings/"))
    # Taken: disabled at once, then gone after the re-read; either way not clickable.
    clickable = watcher.locator(f"a.slot[data-start='{start}']:not([aria-disabled='true'])")
    assert wait_until(lambda: clickable.count() == 0, within=1.0), "not greyed out within 1 s"
    # (Its earlier toasts said someone was booking it, then that it was free again.)
    watcher.locator(".toast", has_text="is no longer available").first.wait_for(timeout=2000)
    shots(watcher, "slot-taken-live")
    fill_and_confirm(loser, name="Loser", email="loser@example.com")
    loser.wait_for_selector("text=just taken")
    assert loser.locator(f"a.slot[data-start='{start}']").count() == 0
    assert "?date=" in loser.url
    shots(loser, "just-taken")
    # What the loser typed waits in the next form (issue 16, finding 4).
    loser.locator("a.slot:not([aria-disabled='true'])").first.click()
    loser.wait_for_url(re.compile(r"/book\?"))
    assert loser.input_value("input[name=name]") == "Loser"
    assert loser.input_value("input[name=email]") == "loser@example.com"


def test_cancel_from_my_bookings_frees_the_slot_live(new_context, live_server):
    expert = new_expert(live_server)
    day = day_after_tomorrow()
    client = new_context()
    me = client.new_page()
    name = sign_up(me)
    me.goto(f"/{expert['username']}/{expert['slug']}?date={day}")
    wait_for_join(me)
    start = me.locator("a.slot").first.get_attribute("data-start")
    me.click(f"a.slot[data-start='{start}']")
    assert me.input_value("input[name=email]") == f"{name}@example.com"  # prefilled
    me.click("button:has-text('Confirm booking')")
    me.wait_for_url(re.compile(r"/bookings/"))

    watcher = booking_page(new_context(), expert, day)
    assert watcher.locator(f"a.slot[data-start='{start}']").count() == 0
    me.goto("/bookings")
    shots(me, "my-bookings")
    me.click("a:has-text('Cancel')")
    me.fill("textarea[name=reason]", "Something came up")
    me.click("button:has-text('Cancel booking')")
    me.wait_for_selector("text=cancelled")
    free = watcher.locator(f"a.slot[data-start='{start}']:not([aria-disabled='true'])")
    assert wait_until(lambda: free.count() == 1, within=2.0), "the slot did not come back live"


def test_after_a_dropped_connection_the_page_catches_up(new_context, live_server):
    expert = new_expert(live_server)
    day = day_after_tomorrow()
    context = new_context()
    # Taking the network away makes the socket's retries fail loudly in the console.
    context.guard.expected_errors = ("ERR_INTERNET_DISCONNECTED", "WebSocket", "ERR_FAILED")
    page = booking_page(context, expert, day)
    start = page.locator("a.slot").first.get_attribute("data-start")
    context.set_offline(True)
    assert wait_until(lambda: page.get_attribute("#booking", "data-live") == "false", within=30)
    status, body = live_server.request(
        "POST",
        f"/api/v1/event-types/{expert['event_type_id']}/bookings",
        {"start": start, "name": "While away", "email": "away@example.com"},
    )
    assert status == 201, body
    # Missed while offline: the slot is still there and clickable.
    assert page.locator(f"a.slot[data-start='{start}']:not([aria-disabled='true'])").count() == 1
    context.set_offline(False)
    wait_for_join(page, timeout=30)
    clickable = page.locator(f"a.slot[data-start='{start}']:not([aria-disabled='true'])")
    assert wait_until(lambda: clickable.count() == 0, within=5), "a stale slot stayed clickable"


def test_booking_works_with_the_keyboard_alone(new_context, live_server):
    expert = new_expert(live_server)
    page = booking_page(new_context(), expert, day_after_tomorrow())
    for _ in range(80):  # Tab until a slot has the focus
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.className")
        if "slot" in focused.split():
            break
    else:
        raise AssertionError("no slot is reachable with Tab")
    # Focus is visible: the focused slot draws an outline or a ring.
    style = page.evaluate(
        "[getComputedStyle(document.activeElement).outlineStyle,"
        " getComputedStyle(document.activeElement).boxShadow]"
    )
    assert style[0] != "none" or style[1] != "none"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/book\?"))
    page.focus("input[name=name]")
    page.keyboard.type("Keyboard Kim")
    page.keyboard.press("Tab")
    page.keyboard.type("kim@example.com")
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_url(re.compile(r"/bookings/"))
    assert page.locator("a.video-link").count() == 1


def test_the_hour_the_clocks_go_back_shows_each_slot_once(new_context, live_server):
    """01:00 and 01:30 happen twice in New York on that night: four slots, four labels."""
    expert = new_expert(live_server, hours=(("00:00", "24:00"),), max_days_ahead=730)
    today = datetime.now(UTC).date()
    # The next first Sunday of November: New York's clocks go back from 02:00 to 01:00.
    day = next(
        d
        for d in (today + timedelta(days=n) for n in range(1, 400))
        if d.month == 11 and d.weekday() == 6 and d.day <= 7
    ).isoformat()
    context = new_context(timezone_id="America/New_York")
    page = context.new_page()
    page.goto(f"/{expert['username']}/{expert['slug']}?date={day}&tz=America/New_York")
    wait_for_join(page)
    slots = page.locator("[data-role=slots] .slot")
    labels = [text.strip() for text in slots.all_inner_texts()][:6]
    assert labels == ["00:00", "00:30", "01:00 EDT", "01:30 EDT", "01:00 EST", "01:30 EST"]
