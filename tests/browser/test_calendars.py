"""Connected calendars in Chromium: an expert connects a real Radicale on the dashboard, a
busy time synced from it disappears from an open booking page without a reload, and a
booking made on that page is written back to the calendar the expert picked."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from tests.browser.conftest import shots
from tests.browser.test_booking_flows import (
    WEEK,
    booking_page,
    day_after_tomorrow,
    fill_and_confirm,
    wait_until,
)

pytestmark = pytest.mark.browser


def vevent(uid: str, start: str, minutes: int) -> str:
    """One event starting at `start` ("YYYY-MM-DDTHH:MM:SSZ")."""
    begin = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ")
    fmt = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//Browser//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{begin.strftime(fmt)}\r\n"
        f"DTEND:{(begin + timedelta(minutes=minutes)).strftime(fmt)}\r\n"
        "SUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def uids_in(account, calendar_url: str) -> set[str]:
    with account.client() as client:
        events = client.calendar(url=calendar_url).events()
        return {str(event.icalendar_component["UID"]) for event in events}


def coach_with_hours(server) -> dict:
    """The site's expert `coach` (made by the CLI, confirmed; no other browser test uses
    it): hours 09:00-17:00 UTC every day and a 30-minute event type."""
    weekly = {day: [["09:00", "17:00"]] for day in WEEK}
    status, body = server.request(
        "PUT", "/api/v1/availability", {"timezone": "UTC", "weekly": weekly}, server.site.auth
    )
    assert status == 200, body
    fields = {"title": "Calendar check", "slug": "calendar-check", "duration_minutes": 30}
    status, body = server.request("POST", "/api/v1/event-types", fields, server.site.auth)
    assert status == 201, body
    return {"username": "coach", "slug": "calendar-check", "event_type_id": body["id"]}


def sign_in(page, username: str, password: str) -> None:
    page.goto("/auth/login")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")
    page.wait_for_url(lambda url: "/auth/login" not in url)


def test_a_synced_busy_time_leaves_an_open_page_and_bookings_reach_the_calendar(
    new_context, live_server, radicale
):
    expert = coach_with_hours(live_server)
    work = radicale.make_calendar("Work")
    radicale.make_calendar("Family")
    day = day_after_tomorrow()

    dashboard = new_context().new_page()
    sign_in(dashboard, "coach", "coach-password")  # make_site's
    dashboard.goto("/dashboard/calendars")
    dashboard.check("input[name=kind][value=caldav]")
    dashboard.fill("input[name=url]", radicale.url)
    dashboard.fill("input[name=username]", radicale.username)
    dashboard.fill("input[name=password]", radicale.password)
    dashboard.click("button:has-text('Connect')")
    dashboard.wait_for_selector("text=Calendar connected")
    connection = dashboard.locator("article.calendar-connection")
    assert connection.count() == 1
    names = connection.locator("tbody th[scope=row]").all_inner_texts()
    assert sorted(names) == ["Family", "None of these", "Work"]
    status = connection.locator(".calendar-status").inner_text()
    assert "OK" in status and "Last synced" in status
    assert radicale.password not in dashboard.content()
    shots(dashboard, "dashboard-calendars")

    guest = booking_page(new_context(), expert, day)
    guest.evaluate("window.sameDocument = true")  # gone after any reload
    busy, later = f"{day}T10:00:00Z", f"{day}T11:00:00Z"
    open_at = guest.locator(f"a.slot[data-start='{busy}']:not([aria-disabled='true'])")
    assert open_at.count() == 1
    radicale.add_event(work, vevent("dentist@example.com", busy, 30))
    connection.locator("button:has-text('Sync now')").click()
    dashboard.wait_for_selector("text=Synced.")
    assert wait_until(lambda: open_at.count() == 0, within=5), "the busy slot stayed open"
    assert guest.evaluate("window.sameDocument === true"), "the booking page was reloaded"
    assert guest.locator(f"a.slot[data-start='{later}']").count() == 1

    row = connection.locator("tr", has=dashboard.locator("th", has_text="Work"))
    row.locator("input[name=writes]").check()
    connection.locator("button:has-text('Save')").click()
    dashboard.wait_for_selector("text=Calendar settings saved")
    checked = connection.locator("input[name=writes]:checked")
    assert checked.get_attribute("aria-label") == "Work receives bookings"
    assert row.locator("input[name=writes]").is_checked()

    guest.click(f"a.slot[data-start='{later}']")
    fill_and_confirm(guest)
    guest.wait_for_url(re.compile(r"/bookings/[0-9a-f]+\?token="))
    uid = re.search(r"/bookings/([0-9a-f]+)", guest.url).group(1)
    expected = f"{uid}@127.0.0.1"  # the booking's UID: BASE_URL's host
    assert wait_until(lambda: expected in uids_in(radicale, work), within=10), "not written back"
