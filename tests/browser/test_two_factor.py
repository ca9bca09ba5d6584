"""Two-factor sign-in in Chromium: enrol by the QR page with a code, then sign in with the
password and a code from the app."""

from __future__ import annotations

import re

import pyotp
import pytest

from expertbook.models import utcnow
from tests.browser.conftest import shots
from tests.e2e.conftest import flask_cli

pytestmark = pytest.mark.browser


def log_in(page, username: str, password: str) -> None:
    page.goto("/auth/login")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")


def test_enrol_and_sign_in_with_a_code(new_context, live_server, live_inbox):
    flask_cli(live_server.site.database_url, "users", "create", "tess", "tess@example.com",
              "--password", "tess-password")  # fmt: skip
    page = new_context().new_page()
    log_in(page, "tess", "tess-password")
    page.wait_for_url(re.compile("/bookings$"))

    page.goto("/profile")
    page.click("a:has-text('Two-factor sign-in')")
    page.wait_for_url(re.compile("/account/two-factor$"))
    qr = page.locator("img.qr")
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")  # the QR code shows
    shots(page, "two-factor-enrol")
    secret = page.text_content("[data-totp-secret]").strip()
    totp = pyotp.TOTP(secret)
    page.fill("input[name=code]", totp.now())
    page.click("button:has-text('Turn on')")
    page.wait_for_selector("text=shown only this once")
    codes = page.locator(".recovery-codes code").all_text_contents()
    assert len(codes) == 10
    live_inbox.wait_for("tess@example.com")

    page.click("button:has-text('Log out')")
    page.wait_for_url(re.compile("/auth/login$"))
    log_in(page, "tess", "tess-password")
    page.wait_for_url(re.compile("/auth/two-factor$"))
    shots(page, "two-factor-sign-in")
    page.goto("/profile")  # not signed in before the code
    page.wait_for_url(re.compile("/auth/login"))

    log_in(page, "tess", "tess-password")
    page.wait_for_url(re.compile("/auth/two-factor$"))
    # The code of enrolment was used; the app's next one signs in.
    page.fill("input[name=code]", totp.generate_otp(totp.timecode(utcnow()) + 1))
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile("/bookings$"))
    page.goto("/profile")
    assert page.text_content("main").count("Two-factor sign-in: on") == 1
