"""A booking that waits for the expert, in Chromium: a guest requests a time on the booking
page of an event type that requires confirmation and is told it is pending; the expert
signs in, finds the request first on the dashboard with the guest's answer, confirms it;
the guest's page then shows the session confirmed, with its video link."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import assert_accessible
from tests.browser.test_booking_flows import booking_page, day_after_tomorrow, new_expert
from tests.mail_inbox import text_of

pytestmark = pytest.mark.browser

QUESTION = {"id": "goal", "label": "What would you like to work on?", "kind": "text",
            "required": True}  # fmt: skip


def test_a_request_is_pending_until_the_expert_confirms_it(new_context, live_server):
    expert = new_expert(
        live_server, title="Strategy review", requires_confirmation=True, questions=[QUESTION]
    )
    # The guest picks a time and answers the question.
    guest = booking_page(new_context(), expert, day_after_tomorrow())
    guest.locator("a.slot").first.click()
    guest.wait_for_url(re.compile(r"/book\?"))
    guest.fill("input[name=name]", "Ada Lovelace")
    guest.fill("input[name=email]", "ada@example.com")
    guest.fill("input[name=answer-goal]", "Our pricing page")
    guest.click("form button[type=submit]:has-text('Confirm')")
    guest.wait_for_url(re.compile(r"/bookings/[0-9a-f]+\?token="))
    manage_url = guest.url
    assert "Waiting for" in guest.locator("main").inner_text()
    assert guest.locator("a.video-link").count() == 0
    assert "Our pricing page" not in guest.content()  # the answers are the expert's
    uid = re.search(r"/bookings/([0-9a-f]+)", manage_url).group(1)

    # The expert signs in and finds the request first on the dashboard.
    page = new_context().new_page()
    page.goto("/auth/login")
    page.fill("input[name=login]", expert["username"])
    page.fill("input[name=password]", "expert-password")
    page.click("button:has-text('Log in')")
    page.goto("/dashboard/")
    requests = page.locator(".booking-requests")
    requests.wait_for()
    item = requests.locator(f"[data-uid='{uid}']")
    assert "Ada Lovelace" in item.inner_text()
    assert "Our pricing page" in item.inner_text()
    assert_accessible(page, "dashboard with a request")
    item.locator("button:has-text('Confirm')").click()
    page.wait_for_url(re.compile(r"/dashboard/$"))
    assert "Confirmed: Ada Lovelace" in page.locator("main").inner_text()
    assert page.locator(f".booking-requests [data-uid='{uid}']").count() == 0

    # The guest's page (their manage link) now says it is confirmed.
    guest.goto(manage_url)
    assert guest.locator(".badge-success:has-text('Confirmed')").count() == 1
    assert re.match(r"https://", guest.locator("a.video-link").inner_text())
    assert "Waiting for" not in guest.locator("main").inner_text()


def test_the_expert_declines_from_the_mail_without_signing_in(new_context, live_server):
    expert = new_expert(live_server, title="Quick chat", requires_confirmation=True)
    guest = booking_page(new_context(), expert, day_after_tomorrow())
    guest.locator("a.slot").first.click()
    guest.wait_for_url(re.compile(r"/book\?"))
    guest.fill("input[name=name]", "Alan Turing")
    guest.fill("input[name=email]", "alan@example.com")
    guest.click("form button[type=submit]:has-text('Confirm')")
    guest.wait_for_url(re.compile(r"/bookings/[0-9a-f]+\?token="))
    manage_url = guest.url

    # The request mail's Decline link: a page with a button, then the answer, once.
    mails = live_server.inbox.wait_for(f"{expert['username']}@example.com", count=2)
    request_mail = next(m for m in mails if m["Subject"].startswith("Please confirm"))
    decline = re.search(r"Decline: (\S+)", text_of(request_mail)).group(1)
    page = new_context().new_page()
    page.goto(decline)
    assert "Decline this booking request?" in page.locator("main").inner_text()
    page.fill("textarea[name=reason]", "Travelling that week.")
    page.click("button:has-text('Decline request')")
    assert "Alan Turing gets an email" in page.locator("main").inner_text()
    page.goto(decline)
    assert "This request was already declined." in page.locator("main").inner_text()

    guest.goto(manage_url)
    text = guest.locator("main").inner_text()
    assert "Declined" in text and "Travelling that week." in text
    (answer,) = [m for m in live_server.inbox.wait_for("alan@example.com", count=2)
                 if m["Subject"].startswith("Declined")]  # fmt: skip
    assert "Travelling that week." in text_of(answer)
