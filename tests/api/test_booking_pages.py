"""GET /api/v1/bookings pages (limit, cursor, next_cursor) and My Bookings' pages."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from expertbook.accounts import create_api_token
from expertbook.extensions import db
from expertbook.models import Booking, hash_token

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def people(make_user, make_event_type):
    """An expert `coach` who also books another expert `mia`, and a client `ann`."""
    coach, mia = make_user("coach", expert=True), make_user("mia", expert=True)
    ann = make_user("ann")
    types = {"coach": make_event_type(coach), "mia": make_event_type(mia)}
    return {"coach": coach, "mia": mia, "ann": ann, "types": types}


def add_bookings(event_type, client, starts, minutes=30, status=Booking.CONFIRMED):
    """Booking rows of `event_type` for `client` at each start, written in one commit
    (history is set down directly; the API under test only reads it)."""
    rows = [
        Booking(
            uid=secrets.token_hex(16),
            expert_id=event_type.expert_id,
            event_type=event_type,
            client=client,
            name=client.display_name if client else "Guest",
            email="guest@example.com",
            start_at=start,
            end_at=start + timedelta(minutes=minutes),
            status=status,
            manage_token_hash=hash_token(secrets.token_urlsafe(16)),
        )
        for start in starts
    ]
    db.session.add_all(rows)
    db.session.commit()
    return [row.uid for row in rows]


def get(client, token, **params):
    return client.get(
        "/api/v1/bookings", query_string=params, headers={"Authorization": f"Bearer {token}"}
    )


def read_all(client, token, **params) -> list[str]:
    """Follow next_cursor until null; the uids in the order the pages gave them."""
    uids, pages = [], 0
    while True:
        response = get(client, token, **params)
        assert response.status_code == 200, response.json
        uids += [b["uid"] for b in response.json["bookings"]]
        pages += 1
        assert pages < 1000
        if response.json["next_cursor"] is None:
            return uids
        params["cursor"] = response.json["next_cursor"]


def test_an_experts_token_lists_both_roles_by_default(any_app, people):
    client = any_app.test_client()
    coach, mia, ann = people["coach"], people["mia"], people["ann"]
    with_coach = add_bookings(people["types"]["coach"], ann, [NOW + timedelta(days=1)])
    by_coach = add_bookings(people["types"]["mia"], coach, [NOW + timedelta(days=2)])
    own = add_bookings(people["types"]["coach"], coach, [NOW + timedelta(days=3)])
    add_bookings(people["types"]["mia"], ann, [NOW + timedelta(days=1)])  # not the coach's
    token = create_api_token(coach)
    db.session.commit()

    both = get(client, token).json
    assert [b["uid"] for b in both["bookings"]] == with_coach + by_coach + own
    assert both["next_cursor"] is None
    as_expert = get(client, token, role="expert").json["bookings"]
    assert [b["uid"] for b in as_expert] == with_coach + own
    as_client = get(client, token, role="client").json["bookings"]
    assert [b["uid"] for b in as_client] == by_coach + own  # a self-booking: in each role
    assert get(client, create_api_token(mia), role="client").json["bookings"] == []


@pytest.mark.parametrize("limit", [1, 3, 7, 500])
def test_pages_read_everything_once_in_order(any_app, people, limit):
    """Both roles interleaved, ties on the start broken by id, over several pages."""
    client = any_app.test_client()
    coach, ann = people["coach"], people["ann"]
    starts = [NOW + timedelta(days=1, hours=h) for h in range(12)]
    add_bookings(people["types"]["coach"], ann, starts)
    add_bookings(people["types"]["mia"], coach, starts[::2])  # the same starts: ties
    add_bookings(people["types"]["coach"], None, [NOW - timedelta(days=d) for d in range(1, 9)])
    token = create_api_token(coach)
    db.session.commit()

    for scope, count in (("upcoming", 18), ("past", 8)):
        expected = Booking.query.filter(
            (Booking.expert_id == coach.id) | (Booking.client_id == coach.id)
        ).all()
        expected = [b for b in expected if (b.end_at > NOW) == (scope == "upcoming")]
        expected.sort(key=lambda b: (b.start_at, b.id), reverse=scope == "past")
        uids = read_all(client, token, scope=scope, limit=limit)
        assert uids == [b.uid for b in expected] and len(uids) == count


def test_past_beyond_five_hundred_is_paged_not_cut(any_app, people):
    client = any_app.test_client()
    starts = [NOW - timedelta(hours=1 + h) for h in range(620)]
    uids = add_bookings(people["types"]["coach"], people["ann"], starts)
    token = create_api_token(people["coach"])
    db.session.commit()

    first = get(client, token, scope="past", role="expert", limit=500).json
    assert len(first["bookings"]) == 500 and first["next_cursor"]
    assert read_all(client, token, scope="past", role="expert", limit=500) == uids  # latest first
    assert len(get(client, token, scope="past").json["bookings"]) == 100  # the default limit


def test_a_session_under_way_is_upcoming(any_app, people):
    client = any_app.test_client()
    now = datetime.now(UTC)
    started = add_bookings(people["types"]["coach"], None, [now - timedelta(minutes=10)])
    ended = add_bookings(people["types"]["coach"], None, [now - timedelta(minutes=40)])
    token = create_api_token(people["coach"])
    db.session.commit()
    assert read_all(client, token) == started
    assert read_all(client, token, scope="past") == ended


def test_longest_bookings_under_way_are_still_upcoming(any_app, people):
    """The index bound (started at most 720 minutes ago) keeps the longest ones."""
    client = any_app.test_client()
    now = datetime.now(UTC)  # not the module's NOW: this one ends two minutes from now
    long_one = add_bookings(
        people["types"]["coach"], None, [now - timedelta(minutes=718)], minutes=720
    )
    token = create_api_token(people["coach"])
    db.session.commit()
    assert read_all(client, token, role="expert") == long_one


def tampered(cursor: str) -> str:
    """One character of the payload changed (a middle one: the last character of base64
    may carry only padding bits, which decoders ignore)."""
    middle = len(cursor) // 4
    return cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1e2"}, "limit"),
        ({"limit": "9" * 5000}, "limit"),
        ({"limit": "٣"}, "limit"),  # a digit, but not an ASCII one
        ({"role": "boss"}, "role"),
        ({"scope": "later"}, "scope"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "W10.x" * 300}, "cursor"),
    ],
)
def test_bad_parameters_are_422_with_the_field(any_app, people, params, field):
    client = any_app.test_client()
    token = create_api_token(people["coach"])
    db.session.commit()
    response = get(client, token, **params)
    assert response.status_code == 422
    assert response.json["error"]["field"] == field


def test_a_cursor_works_only_as_issued(any_app, people):
    """Tampered, or moved to another scope or role, a cursor is 422 on `cursor`."""
    client = any_app.test_client()
    add_bookings(
        people["types"]["coach"], people["ann"], [NOW + timedelta(hours=h) for h in (1, 2)]
    )
    add_bookings(
        people["types"]["coach"], people["ann"], [NOW - timedelta(hours=h) for h in (1, 2)]
    )
    token = create_api_token(people["coach"])
    db.session.commit()
    cursor = get(client, token, limit=1).json["next_cursor"]
    assert get(client, token, limit=1, cursor=cursor).status_code == 200
    for params in (
        {"cursor": tampered(cursor)},
        {"cursor": cursor, "scope": "past"},
        {"cursor": cursor, "role": "expert"},
    ):
        response = get(client, token, limit=1, **params)
        assert response.status_code == 422 and response.json["error"]["field"] == "cursor"
    past = get(client, token, limit=1, scope="past").json["next_cursor"]
    assert get(client, token, limit=1, scope="upcoming", cursor=past).status_code == 422
    # A cursor signed with another server's key is refused too.
    any_app.secret_key = "another key"
    assert get(client, token, limit=1, cursor=cursor).status_code == 422


# ---------------------------------------------------------------- My Bookings' pages


def links(page: str) -> dict[str, str]:
    """The pagination links of a My Bookings page, by their text."""
    nav = re.search(r'<nav class="pagination".*?</nav>', page, re.S)
    if nav is None:
        return {}
    found = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav.group(0))
    return {text.strip(" ←→«"): unescape(href) for href, text in found}


def listed(page: str) -> list[str]:
    return re.findall(r'data-uid="([0-9a-f]{32})"', page)


def test_my_bookings_pages_forward_and_back(any_app, people, auth_for):
    coach, ann = people["coach"], people["ann"]
    starts = [NOW - timedelta(hours=2 + h) for h in range(45)]
    uids = add_bookings(people["types"]["coach"], ann, starts[::2])
    uids += add_bookings(people["types"]["mia"], coach, starts[1::2])
    order = [
        uid for _, uid in sorted(zip(starts[::2] + starts[1::2], uids, strict=True), reverse=True)
    ]
    client = auth_for(coach)

    first = client.get("/bookings?scope=past").text
    assert listed(first) == order[:20] and set(links(first)) == {"More"}
    second = client.get(links(first)["More"]).text
    assert listed(second) == order[20:40] and set(links(second)) == {"First", "Newer", "More"}
    third = client.get(links(second)["More"]).text
    assert listed(third) == order[40:] and set(links(third)) == {"First", "Newer"}
    back = client.get(links(third)["Newer"]).text
    assert listed(back) == order[20:40]
    assert listed(client.get(links(back)["Newer"]).text) == order[:20]
    assert listed(client.get(links(third)["First"]).text) == order[:20]


def test_my_bookings_upcoming_says_sooner(any_app, people, auth_for):
    ann = people["ann"]
    add_bookings(people["types"]["coach"], ann, [NOW + timedelta(hours=1 + h) for h in range(21)])
    client = auth_for(ann)
    first = client.get("/bookings").text
    second = client.get(links(first)["More"]).text
    assert len(listed(second)) == 1 and set(links(second)) == {"First", "Sooner"}


def test_my_bookings_with_a_bad_cursor_shows_the_first_page(any_app, people, auth_for):
    ann = people["ann"]
    uids = add_bookings(people["types"]["coach"], ann, [NOW + timedelta(hours=1)])
    client = auth_for(ann)
    page = client.get("/bookings?cursor=forged")
    assert page.status_code == 200 and listed(page.text) == uids
    assert "no longer works" in page.text


@pytest.fixture
def auth_for(any_app):
    """Factory: auth_for(user) -> a test client signed in as `user`."""
    from tests.conftest import AuthActions

    def sign_in(user):
        client = any_app.test_client()
        assert AuthActions(client).login(user.username).status_code == 302
        return client

    return sign_in
