"""Booking questions in Chromium: the expert's editor (script-enhanced) and the client's
confirm step, both checked with axe."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import assert_accessible, screenshot
from tests.browser.test_booking_flows import booking_page, day_after_tomorrow, new_expert

pytestmark = pytest.mark.browser


def log_in(page, username: str) -> None:
    page.goto("/auth/login")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", "expert-password")
    page.click("button:has-text('Log in')")
    page.wait_for_url(re.compile("/dashboard/$|/bookings$"))


def test_the_expert_adds_orders_and_saves_questions(new_context, live_server):
    expert = new_expert(live_server)
    page = new_context().new_page()
    log_in(page, expert["username"])
    path = f"/dashboard/event-types/{expert['event_type_id']}/edit"
    page.goto(path)
    rows = page.locator("[data-question-row]:visible")
    # With script: one empty row, no position numbers, no choices box for short text.
    assert rows.count() == 1
    assert page.locator("input[name=questions-0-position]").is_hidden()
    assert page.locator("textarea[name=questions-0-choices]").is_hidden()
    page.fill("input[name=questions-0-label]", "Your company")
    page.check("input[name=questions-0-required]")
    page.click("button:has-text('Add a question')")
    assert rows.count() == 2
    assert page.evaluate("document.activeElement.name") == "questions-1-label"
    page.keyboard.type("Your level")
    page.select_option("select[name=questions-1-kind]", "choice")
    page.fill("textarea[name=questions-1-choices]", "Beginner\nAdvanced")
    page.click("[data-question-row]:has(input[name=questions-1-label]) button[data-move=up]")
    legends = page.locator("[data-question-row]:visible legend").all_inner_texts()
    assert legends == ["Question 1", "Question 2"]
    assert page.input_value("input[name=questions-1-position]") == "1"
    page.check("input[name=requires_confirmation]")
    page.fill("input[name=max_per_day]", "3")
    assert_accessible(page, "event type form with questions")
    screenshot(page, "event-type-questions")
    page.click("button[type=submit]:has-text('Save changes')")
    page.wait_for_url(re.compile("/dashboard/$"))
    page.goto(path)
    assert page.input_value("input[name=questions-0-label]") == "Your level"
    assert page.input_value("input[name=questions-1-label]") == "Your company"
    assert page.is_checked("input[name=requires_confirmation]")
    # A bad question comes back on its row, announced to assistive technology.
    page.fill("input[name=questions-0-label]", "x" * 150 + "\u202e")
    page.click("button[type=submit]:has-text('Save changes')")
    error = page.locator("#questions-0-label-error")
    assert "one line" in error.inner_text()
    assert "questions-0-label-error" in page.get_attribute(
        "input[name=questions-0-label]", "aria-describedby"
    )


def test_the_client_answers_the_questions(new_context, live_server):
    questions = [
        {"id": "company", "label": "Your company", "kind": "text", "required": True},
        {"label": "Your level", "kind": "choice", "choices": ["Beginner", "Advanced"]},
        {"id": "terms", "label": "I accept the terms", "kind": "checkbox", "required": True},
    ]
    expert = new_expert(live_server, questions=questions)
    page = booking_page(new_context(), expert, day_after_tomorrow())
    page.locator("a.slot").first.click()
    page.wait_for_url(re.compile(r"/book\?"))
    page.fill("input[name=name]", "Grace Hopper")
    page.fill("input[name=email]", "grace@example.com")
    page.click("button:has-text('Confirm booking')")
    page.wait_for_selector("#answer-company-error")
    assert "Please answer this question." in page.inner_text("#answer-company-error")
    assert "Please tick this box." in page.inner_text("#answer-terms-error")
    assert_accessible(page, "confirm step with question errors")
    screenshot(page, "confirm-questions")
    page.get_by_label("Your company").fill("Acme")
    page.get_by_label("Advanced").check()
    page.get_by_label("I accept the terms").check()
    page.click("button:has-text('Confirm booking')")
    page.wait_for_url(re.compile(r"/bookings/[0-9a-f]+\?token="))
    assert "Acme" not in page.content()


def test_the_questions_editor_works_without_script(new_context, live_server):
    expert = new_expert(live_server)
    page = new_context(java_script_enabled=False).new_page()
    log_in(page, expert["username"])
    path = f"/dashboard/event-types/{expert['event_type_id']}/edit"
    page.goto(path)
    assert page.locator("[data-question-row]:visible").count() == 1
    page.fill("input[name=questions-0-label]", "Your company")
    page.fill("input[name=questions-0-position]", "2")
    page.click("summary:has-text('More questions')")
    page.fill("input[name=questions-1-label]", "Your level")
    page.select_option("select[name=questions-1-kind]", "choice")
    page.fill("textarea[name=questions-1-choices]", "Beginner\nAdvanced")
    page.fill("input[name=questions-1-position]", "1")
    # No axe here: it is a script itself, and this page runs none.
    page.click("button[type=submit]:has-text('Save changes')")
    page.wait_for_url(re.compile("/dashboard/$"))
    page.goto(path)
    assert page.input_value("input[name=questions-0-label]") == "Your level"
    assert page.input_value("textarea[name=questions-0-choices]") == "Beginner\nAdvanced"
    assert page.input_value("input[name=questions-1-label]") == "Your company"
    # Removing one: tick its Remove box.
    page.check("input[name=questions-0-remove]")
    page.click("button[type=submit]:has-text('Save changes')")
    page.wait_for_url(re.compile("/dashboard/$"))
    page.goto(path)
    assert page.input_value("input[name=questions-0-label]") == "Your company"
    assert page.input_value("input[name=questions-1-label]") == ""
