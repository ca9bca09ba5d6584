"""Webhooks on the dashboard: add (the secret shown once), clear form errors, recent
deliveries, send a test event, remove; another expert's webhook is 404; CSRF."""

from __future__ import annotations

import hashlib
import hmac
import html
import re

import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.outbox import OutboxMessage, WebhookEndpoint
from expertbook.webhooks.endpoints import MAX_ENDPOINTS
from tests.webhooks.receiver import Answer

PAGE = "/dashboard/webhooks"
ALL = ["booking.created", "booking.rescheduled", "booking.cancelled"]


@pytest.fixture
def signed_in(auth, coach):
    auth.login("coach")
    return auth


def secret_on(page: str) -> str | None:
    found = re.search(r'id="new-secret" type="text" readonly value="([^"]+)"', page)
    return found and found.group(1)


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_add_shows_the_secret_once_and_it_signs_the_test_event(
    client, signed_in, receiver, private_ok
):
    url = receiver.url + "/hook"
    page = signed_in.post(PAGE, {"url": url, "events": ["booking.created", "booking.cancelled"]})
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    secret = secret_on(page.text)
    assert secret and secret.startswith("whsec_")
    endpoint = db.session.scalar(sa.select(WebhookEndpoint))
    assert endpoint.url == url and endpoint.events == ["booking.created", "booking.cancelled"]
    again = client.get(PAGE).text
    assert secret not in again and url in again  # shown once
    assert "Booking created, Booking cancelled" in again

    answer = signed_in.post(f"{PAGE}/{endpoint.id}/test", token_from=PAGE)
    assert answer.status_code == 302 and answer.headers["Location"] == PAGE
    [got] = receiver.wait_for(1)
    expected = "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-ExpertBook-Signature"] == expected
    listed = client.get(PAGE).text
    assert f'data-delivery-id="{got.headers["X-ExpertBook-Delivery"]}"' in listed
    assert "<code>ping</code>" in listed and "Delivered" in listed


def test_failed_deliveries_show_status_attempts_and_error(
    client, signed_in, receiver, private_ok, coach
):
    signed_in.post(PAGE, {"url": receiver.url + "/hook", "events": ALL})
    endpoint = db.session.scalar(sa.select(WebhookEndpoint))
    receiver.answer(Answer(503, b"<html>down for maintenance</html>"))
    signed_in.post(f"{PAGE}/{endpoint.id}/test", token_from=PAGE)
    receiver.wait_for(1)
    message = db.session.scalar(sa.select(OutboxMessage))
    db.session.refresh(message)
    assert message.status == OutboxMessage.PENDING and message.attempts == 1
    page = client.get(PAGE).text
    row = re.search(rf'<tr data-delivery-id="{message.uid}">(.*?)</tr>', page, re.S).group(1)
    assert "Retrying" in row and "503" in row
    assert html.escape("The receiver answered 503. <html>down for maintenance</html>") in row
    assert "<html>down" not in page  # the receiver's text is escaped, never markup


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"url": "", "events": ALL}, "url", "give the address"),
        ({"url": "ftp://example.com/x", "events": ALL}, "url", "https://"),
        ({"url": "http://127.0.0.1:9/hook", "events": ALL}, "url", "private network"),
        ({"url": "https://example.com/hook"}, "events", "at least one"),
        ({"url": "https://example.com/hook", "events": ["booking.paid"]}, "events", "Unknown"),
        ({"url": "https://" + "a" * 2050, "events": ALL}, "url", "2048"),
    ],
)
def test_bad_input_shows_a_clear_error_and_stores_nothing(signed_in, form, field, words):
    page = signed_in.post(PAGE, form)
    assert page.status_code == 200
    errors = re.findall(r'class="field-error">([^<]*)<', page.text)
    assert any(words in html.unescape(e) for e in errors), errors
    assert f'id="{field}-error"' in page.text or f'id="{field}-error"' in page.text
    assert count(WebhookEndpoint) == 0
    assert secret_on(page.text) is None


def test_the_form_hides_at_the_limit(signed_in, receiver, private_ok):
    for i in range(MAX_ENDPOINTS):
        signed_in.post(PAGE, {"url": f"{receiver.url}/hook/{i}", "events": ALL})
    page = signed_in.post(PAGE, {"url": receiver.url + "/more", "events": ALL}).text
    assert f"At most {MAX_ENDPOINTS} webhooks." in page
    assert count(WebhookEndpoint) == MAX_ENDPOINTS
    assert "remove one to add another" in page


def test_remove_asks_first_and_then_removes(client, signed_in, receiver, private_ok):
    signed_in.post(PAGE, {"url": receiver.url + "/hook", "events": ALL})
    endpoint_id = db.session.scalar(sa.select(WebhookEndpoint.id))
    page = client.get(PAGE).text
    assert f'action="{PAGE}/{endpoint_id}/remove" data-confirm="Remove the webhook' in page
    assert "js/dashboard.js" in page  # which asks
    answer = signed_in.post(f"{PAGE}/{endpoint_id}/remove", token_from=PAGE)
    assert answer.status_code == 302
    assert count(WebhookEndpoint) == 0
    assert "No webhooks yet." in client.get(PAGE).text


def test_another_experts_webhook_is_404_and_untouched(
    client, auth, make_user, receiver, private_ok
):
    from expertbook.models import utcnow
    from expertbook.webhooks.endpoints import add_endpoint

    other = make_user("other", expert=True)
    theirs = add_endpoint(other, receiver.url + "/theirs", ALL, now=utcnow()).endpoint
    make_user("coach", expert=True)
    auth.login("coach")
    assert receiver.url + "/theirs" not in client.get(PAGE).text
    for action in ("test", "remove"):
        answer = auth.post(f"{PAGE}/{theirs.id}/{action}", token_from=PAGE)
        assert answer.status_code == 404
    assert count(WebhookEndpoint) == 1 and count(OutboxMessage) == 0
    assert receiver.received == []


def test_every_post_needs_the_csrf_token(client, signed_in, receiver, private_ok):
    signed_in.post(PAGE, {"url": receiver.url + "/hook", "events": ALL})
    endpoint_id = db.session.scalar(sa.select(WebhookEndpoint.id))
    for path, data in [
        (PAGE, {"url": receiver.url + "/second", "events": ALL}),
        (f"{PAGE}/{endpoint_id}/test", {}),
        (f"{PAGE}/{endpoint_id}/remove", {}),
    ]:
        assert client.post(path, data=data).status_code == 400
    assert count(WebhookEndpoint) == 1 and count(OutboxMessage) == 0


def test_only_experts_see_the_page(client, auth, make_user):
    assert client.get(PAGE).headers["Location"].startswith("/auth/login")
    make_user("plain")
    auth.login("plain")
    assert client.get(PAGE).headers["Location"] == "/profile"


def test_the_dashboard_links_to_the_page(client, signed_in):
    assert f'href="{PAGE}"' in client.get("/dashboard/").text
