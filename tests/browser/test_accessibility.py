"""Issue 16, "everyone can use it", in Chromium: axe-core on every page a client and an
expert go through, 200% zoom without sideways scrolling, the reschedule page's day links at
three widths, and a booking page that hears its event type was switched off."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import DESKTOP, PHONE, assert_accessible
from tests.browser.test_booking_flows import (
    booking_page,
    day_after_tomorrow,
    fill_and_confirm,
    new_expert,
    wait_for_join,
    wait_until,
)
from tests.browser.test_newcomer import sign_up

pytestmark = pytest.mark.browser

# 200% zoom of a 1280-px window: a 640-px layout viewport, drawn at two device pixels each.
ZOOMED = {"width": 640, "height": 430}
TABLET = {"width": 768, "height": 1000}
PLANTED = """<!doctype html><html lang="en"><head><title>Planted</title></head><body><main>
<h1>Planted</h1>%s</main></body></html>"""


def fits_without_sideways_scrolling(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def log_in(page, login: str, password: str) -> None:
    page.goto("/auth/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")
    page.wait_for_url(re.compile("/(bookings|dashboard/)$"))


class Audit:
    """assert_accessible on many pages, every finding reported at the end, not just the
    first page's."""

    def __init__(self):
        self.problems: list[str] = []

    def __call__(self, page, label: str) -> None:
        try:
            assert_accessible(page, label)
        except AssertionError as error:
            self.problems.append(str(error))

    def zoomed(self, page, label: str) -> None:
        """The page at 200% zoom scrolls only up and down."""
        viewport = page.viewport_size
        page.set_viewport_size(ZOOMED)
        if not fits_without_sideways_scrolling(page):
            wide = page.evaluate(
                "[...document.querySelectorAll('body *')]"
                ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
                ".slice(0, 5).map(e => e.tagName + '.' + e.className)"
            )
            self.problems.append(f"{label} at 200% zoom scrolls sideways: {wide}")
        page.set_viewport_size(viewport)

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def test_the_axe_helper_fails_on_a_planted_violation(new_context):
    """The check itself can fail: faint text and an image without a text alternative are
    found, and a page without them passes."""
    page = new_context().new_page()
    page.set_content(PLANTED % '<p style="color:#bbb;background:#fff">Faint words</p>')
    with pytest.raises(AssertionError, match="color-contrast"):
        assert_accessible(page, "planted contrast")
    page.set_content(PLANTED % '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">')
    with pytest.raises(AssertionError, match="image-alt"):
        assert_accessible(page, "planted image")
    page.set_content(PLANTED % "<p>Plain words, dark on light.</p>")
    assert_accessible(page, "clean page")


def test_every_page_passes_axe_and_works_at_200_percent(new_context, live_server):
    """Log-in, confirm, confirmation, My Bookings, reschedule, dashboard, hours, event-type
    form and calendars: nothing serious or critical, contrast AA; at 200% zoom the booking
    pages, My Bookings and the dashboard do not scroll sideways."""
    expert = new_expert(live_server)
    audit = Audit()

    client = new_context(device_scale_factor=2).new_page()
    client.goto("/auth/login")
    audit(client, "log-in")
    sign_up(client)
    client.goto(f"/{expert['username']}/{expert['slug']}?date={day_after_tomorrow()}")
    wait_for_join(client)
    audit.zoomed(client, "booking page")
    client.locator("a.slot").first.click()
    client.wait_for_url(re.compile(r"/book\?"))
    audit(client, "confirm")
    audit.zoomed(client, "confirm")
    client.fill("input[name=name]", "")
    client.fill("input[name=email]", "not an address")
    client.click("button:has-text('Confirm booking')")
    client.wait_for_selector(".field-error")
    audit(client, "confirm with errors")
    fill_and_confirm(client)
    client.wait_for_url(re.compile(r"/bookings/[0-9a-f]+"))
    audit(client, "confirmation")
    client.goto("/bookings")
    audit(client, "My Bookings")
    audit.zoomed(client, "My Bookings")

    # Finding 14: the day links stay on one line each, inside the card, at every width.
    client.click("a:has-text('Reschedule')")
    client.wait_for_url(re.compile(r"/reschedule"))
    client.click("a:has-text('Next day')")
    client.wait_for_selector("a:has-text('Previous day')")
    audit(client, "reschedule")
    for viewport in (PHONE, TABLET, DESKTOP):
        client.set_viewport_size(viewport)
        boxes = client.evaluate(
            """() => {
              const card = document.querySelector('.day-nav').closest('.card');
              const box = (e) => { const r = e.getBoundingClientRect();
                return {left: r.left, right: r.right, top: r.top}; };
              // The lines a link's text is laid out on: one rectangle per line box.
              const text = (e) => { const range = document.createRange();
                range.selectNodeContents(e);
                const rects = [...range.getClientRects()];
                return {lines: new Set(rects.map((r) => Math.round(r.top))).size,
                        right: Math.max(...rects.map((r) => r.right))}; };
              const links = [...document.querySelectorAll('.day-nav a')];
              return {card: box(card), links: links.map((a) => ({...box(a), text: text(a)}))};
            }"""
        )
        card, links = boxes["card"], boxes["links"]
        assert len(links) == 2, viewport
        for link in links:
            assert link["text"]["lines"] == 1, f"a day link wraps at {viewport['width']} px"
            assert link["text"]["right"] <= link["right"], f"text spills at {viewport['width']} px"
            assert card["left"] <= link["left"] and link["right"] <= card["right"], viewport
        assert links[0]["top"] == links[1]["top"], f"the links stack at {viewport['width']} px"
    client.set_viewport_size(DESKTOP)

    pro = new_context(device_scale_factor=2).new_page()
    log_in(pro, expert["username"], "expert-password")
    pro.goto("/dashboard/")
    audit(pro, "dashboard")
    audit.zoomed(pro, "dashboard")
    # Finding 6: with its only booking upcoming, the type can be neither deleted nor archived.
    assert pro.locator("button:has-text('Archive'), button:has-text('Delete')").count() == 0
    assert "1 upcoming booking" in pro.inner_text(".event-type-card")
    # Once it is cancelled, the dialog names the archive before it happens.
    client.goto("/bookings")
    client.click("a:has-text('Cancel')")
    client.click("button:has-text('Cancel booking')")
    client.wait_for_selector("text=cancelled")
    pro.reload()
    asked = []
    pro.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    pro.click("button:has-text('Archive')")
    pro.wait_for_selector("text=archived. Its bookings keep their details.")
    assert asked and asked[0].startswith("Archive “Deep dive”? It leaves your public page")
    assert pro.locator("#archived-heading").is_visible()
    audit(pro, "dashboard with an archived type")
    audit.zoomed(pro, "dashboard with an archived type")
    for path, label in (
        ("/dashboard/availability", "hours"),
        ("/dashboard/event-types/new", "event-type form"),
        ("/dashboard/calendars", "calendars"),
    ):
        pro.goto(path)
        audit(pro, label)
    audit.check()


def test_a_switched_off_type_says_so_live(new_context, live_server):
    """A booking page open while the expert switches its type off says "not taking bookings
    right now" without a reload (slots_changed, then a re-read that answers 404), and shows
    its times again when the type is switched back on."""
    expert = new_expert(live_server)
    context = new_context()
    context.guard.expected_errors = ("404 (NOT FOUND)",)  # the re-reads that find it off
    page = booking_page(context, expert, day_after_tomorrow())
    notice = page.locator("[data-role=closed]")
    assert not notice.is_visible()
    pro = new_context().new_page()
    log_in(pro, expert["username"], "expert-password")
    pro.goto("/dashboard/")
    pro.click("button:has-text('Deactivate')")
    pro.wait_for_selector("text=is now inactive")
    notice.wait_for(state="visible", timeout=5000)
    assert "is not taking bookings right now" in notice.inner_text()
    assert page.locator("a.slot:visible").count() == 0
    toast = page.locator(".toast-region .toast").first
    assert "not taking bookings right now" in toast.inner_text()
    assert_accessible(page, "booking page, switched off")
    page.click("[data-role=closed] a")
    page.wait_for_url(re.compile(f"/{expert['username']}$"))
    page.go_back()
    pro.click("button:has-text('Activate')")
    pro.wait_for_selector("text=is now active")
    page.goto(f"/{expert['username']}/{expert['slug']}?date={day_after_tomorrow()}")
    wait_for_join(page)
    pro.click("button:has-text('Deactivate')")
    notice.wait_for(state="visible", timeout=5000)
    pro.click("button:has-text('Activate')")
    assert wait_until(lambda: page.locator("a.slot:visible").count() > 0, within=5)
    assert not notice.is_visible()
