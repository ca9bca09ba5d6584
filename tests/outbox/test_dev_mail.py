"""/dev/mail: without a mail server, the last mails with their text and links (development
only), everything escaped."""

from __future__ import annotations

import pytest

from tests.booking_fixtures import day_ahead


def test_a_booking_s_mails_are_listed_with_their_links(app, client, sync):
    start = day_ahead(3, 9).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"start": start, "name": "<b>Ann</b>", "email": "ann@example.com"}
    answer = client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body).json
    page = client.get("/dev/mail")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.text
    assert "ann@example.com" in html and "coach@example.com" in html
    assert f'href="{answer["manage_url"]}"' in html.replace("&amp;", "&")
    assert "<b>Ann</b>" not in html and "&lt;b&gt;Ann&lt;/b&gt;" in html


def test_the_list_keeps_the_last_fifty(app, client, sync):
    from email.message import EmailMessage

    from expertbook.mail import dev_mails, send_email

    for n in range(60):
        message = EmailMessage()
        message["To"], message["Subject"] = f"p{n}@example.com", f"Mail {n}"
        message.set_content("hello")
        send_email(message)
    kept = dev_mails(app)
    assert len(kept) == 50 and kept[0]["subject"] == "Mail 59"


def test_there_is_no_dev_mail_in_production(app, client):
    app.config["PRODUCTION"] = True
    assert client.get("/dev/mail").status_code == 404


@pytest.mark.parametrize(
    ("address", "status"),
    [
        ("127.0.0.1", 200),
        ("127.8.9.10", 200),
        ("::1", 200),
        ("192.168.1.20", 404),
        ("10.0.0.5", 404),
        ("2001:db8::1", 404),
        ("::ffff:192.168.1.20", 404),
    ],
)
def test_only_this_machine_sees_dev_mail(app, client, address, status):
    page = client.get("/dev/mail", environ_base={"REMOTE_ADDR": address})
    assert page.status_code == status


def test_with_a_mail_server_nothing_is_kept(app, client, sync, inbox):
    start = day_ahead(3, 9).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"start": start, "name": "Ann", "email": "ann@example.com"}
    client.post(f"/api/v1/event-types/{sync.id}/bookings", json=body)
    assert len(inbox.messages) == 2
    assert "No mail yet" in client.get("/dev/mail").text
