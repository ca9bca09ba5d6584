"""Two clients move their bookings to the same new time at once: exactly one gets it."""

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.conftest import future_slot, setup_coach
from tests.e2e.test_booking_race import booking_rows

pytestmark = pytest.mark.e2e


def guest_booking(server, event_type_id: int, start: str, email: str) -> str:
    status, body = server.request(
        "POST",
        f"/api/v1/event-types/{event_type_id}/bookings",
        {"start": start, "name": "Guest", "email": email},
    )
    assert status == 201, body
    return body["manage_url"]


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_two_reschedules_to_one_slot(database, request, start_server):
    site = request.getfixturevalue("pg_site" if database == "postgresql" else "sqlite_site")
    server = start_server(site.database_url)
    event_type_id = setup_coach(site, server)
    manage_urls = [
        guest_booking(server, event_type_id, future_slot(hour=h), f"g{h}@example.com")
        for h in (9, 10)
    ]
    target = future_slot(hour=15)
    sessions, forms = [], []
    for url in manage_urls:
        session = requests.Session()
        reschedule_url = url.replace("?token=", "/reschedule?token=")
        page = session.get(reschedule_url, timeout=10)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
        sessions.append(session)
        forms.append((reschedule_url, {"csrf_token": token, "start": target}))
    barrier = threading.Barrier(2)
    moved = []

    def move(i: int):
        barrier.wait()
        response = sessions[i].post(forms[i][0], data=forms[i][1], timeout=30,
                                    allow_redirects=False)  # fmt: skip
        moved.append(response.status_code)

    threads = [threading.Thread(target=move, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        # Their kept-alive sockets closed now, not whenever the collector finds them (a
        # ResourceWarning then fails whichever test is running).
        for session in sessions:
            session.close()
    # One moved (302); the other sees the reschedule page again with "not available" (200).
    assert sorted(moved) == [200, 302]
    day = datetime.now(UTC) + timedelta(days=2)
    status, body = server.request(
        "GET",
        f"/api/v1/event-types/{event_type_id}/slots?from={day:%Y-%m-%d}&to={day:%Y-%m-%d}&tz=UTC",
    )
    starts = [slot["start"] for slot in body["slots"]]
    assert target not in starts
    assert booking_rows(site.database_url) == 2
