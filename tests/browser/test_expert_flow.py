"""A newcomer becomes an expert in Chromium: sign up, confirm the address from the mail,
Become an Expert, hours, event type, and the shareable link copied to the clipboard."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.conftest import shots
from tests.mail_inbox import link_in

pytestmark = pytest.mark.browser


def test_a_newcomer_sets_up_and_copies_the_link(new_context, live_server, live_inbox):
    context = new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    username = f"newcomer{int(time.time() * 1000) % 1000000}"
    page.goto("/")
    shots(page, "home")
    page.click("text=Sign up")
    shots(page, "register")
    page.fill("input[name=username]", username)
    page.fill("input[name=email]", f"{username}@example.com")
    page.fill("input[name=password]", "newcomer-password")
    page.fill("input[name=confirm]", "newcomer-password")
    page.click("button:has-text('Sign up')")
    page.wait_for_url(re.compile("/auth/login$"))
    page.wait_for_selector("text=Check your inbox")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", "newcomer-password")
    page.click("button:has-text('Log in')")
    page.wait_for_url(re.compile("/bookings$"))
    page.goto("/profile")
    page.select_option("select[name=timezone]", "Europe/Berlin")
    page.click("button:has-text('Save profile')")
    page.wait_for_selector("text=Profile saved")
    shots(page, "profile")
    # Become an Expert waits for the address: the link in the mail confirms it.
    page.click("button:has-text('Become an Expert')")
    page.wait_for_selector("text=Confirm your email address first")
    (mail,) = live_inbox.wait_for(f"{username}@example.com")
    page.goto(link_in(mail, "/auth/verify/"))
    page.wait_for_selector("text=is confirmed")
    # A display name typed but not saved goes along with Become an Expert (issue 16).
    page.fill("input[name=name]", "Nia Newcomer")
    page.click("button:has-text('Become an Expert')")
    page.wait_for_url(re.compile("/dashboard/$"))
    shots(page, "dashboard-welcome")

    page.click("a:has-text('Set your hours')")
    page.wait_for_url(re.compile("/dashboard/availability$"))
    page.select_option("select[name=timezone]", "Europe/Berlin")
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
        page.click(f"button:has-text('Add hours ({day})')")
        page.fill(f"input[aria-label='{day} start 1']", "09:00")
        page.fill(f"input[aria-label='{day} end 1']", "12:00")
    page.click("button:has-text('Add hours (Monday)')")
    page.fill("input[aria-label='Monday start 2']", "13:00")
    page.fill("input[aria-label='Monday end 2']", "17:00")
    page.click("button:has-text('Save weekly hours')")
    page.wait_for_selector(".flash-success")
    shots(page, "availability")

    page.goto("/dashboard/event-types/new")
    page.fill("input[name=title]", "Intro call")
    page.fill("input[name=duration_minutes]", "30")
    assert page.input_value("input[name=slug]") in ("", "intro-call")
    page.fill("input[name=slug]", "intro-call")
    page.select_option("select[name=location]", "google_meet")
    shots(page, "event-type-form")
    page.click("button[type=submit]:has-text('Create')")
    page.wait_for_url(re.compile("/dashboard/$"))
    shots(page, "dashboard")

    link = f"{live_server.url}/{username}/intro-call"
    assert page.input_value("input[readonly][value$='/intro-call']") == link
    page.click("button:has-text('Copy link')")
    page.wait_for_selector("text=Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link
    page.goto(link)
    assert page.locator("a.slot").count() > 0 or page.locator(".cal-day.has-slots").count() > 0
    assert "Nia Newcomer" in page.inner_text(".event-summary")
