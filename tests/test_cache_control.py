"""Answers that carry a secret are never cached: `Cache-Control: no-store`."""

import re

from tests.booking_fixtures import day_ahead


def test_the_booking_apis_201_and_the_guests_pages_are_not_cached(client, sync):
    response = client.post(
        f"/api/v1/event-types/{sync.id}/bookings",
        json={"start": day_ahead(3, 10).isoformat(), "name": "Ann", "email": "ann@example.com"},
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    manage = response.json["manage_url"].removeprefix("http://testserver")
    ics = response.json["ics_url"].removeprefix("http://testserver")
    reschedule = manage.replace("?", "/reschedule?")
    for path in (manage, ics, reschedule):
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["Cache-Control"] == "no-store", path


def test_a_new_api_token_and_a_new_feed_address_are_not_cached(client, auth, make_user):
    make_user("coach", expert=True)
    auth.login("coach")
    page = auth.post("/dashboard/tokens", {"name": "laptop"})
    assert re.search(r'id="new-token"', page.text)
    assert page.headers["Cache-Control"] == "no-store"
    feed = auth.post("/calendar/regenerate", token_from="/dashboard/")
    assert feed.status_code == 200 and "/calendar/" in feed.text
    assert feed.headers["Cache-Control"] == "no-store"
    secret = re.search(r"/calendar/([A-Za-z0-9_-]+)\.ics", feed.text).group(1)
    assert client.get(f"/calendar/{secret}.ics").headers["Cache-Control"] == "no-store"
