"""Authorization everywhere, as a matrix: every route and API call that reads or changes an
event type, availability, a booking, an API token or the calendar feed, called by each actor.

The table lives in `tests/authorization_cases.py`. Each case checks the answer (allowed,
sent to log in, sent to Become an Expert, or 404/401/403) and then the database: a refused
call, or an allowed call on the caller's own data, leaves everything of the owner's as it
was; an owner's allowed change changes exactly what it should. A stranger cannot tell a real
booking from a made-up uid: same status, same headers, same body.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
import sqlalchemy as sa

from expertbook.accounts import create_api_token
from expertbook.api.availability import availability_payload
from expertbook.auth.tokens import issue_email_token
from expertbook.auth.two_factor import start_enrolment
from expertbook.availability import set_availability
from expertbook.calendars.models import CalendarConnection, ConnectedCalendar
from expertbook.extensions import db
from expertbook.models import (
    ApiToken,
    Booking,
    EmailToken,
    EventType,
    User,
    hash_token,
    new_token,
    utcnow,
)
from tests.authorization_cases import (
    BOOKING_UID_ROUTES,
    CASES,
    EVERYONE,
    ROUTES,
    STRANGERS_ON_API,
    STRANGERS_ON_PAGES,
    Route,
)
from tests.booking_fixtures import NOW, day_ahead
from tests.conftest import PASSWORD

ALL_DAY = [(0, 1440)]
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
# The per-request CSRF token is the session's, not the resource's: equal bodies ignore it
# (every one in the page, whatever the attribute order: its value carries a timestamp).
CSRF_VALUES = re.compile(
    r'(name="csrf-token" content="|<input[^>]*name="csrf_token"[^>]*value=")[^"]+"'
)


@dataclass
class World:
    """Everyone and everything the matrix calls on, committed."""

    values: dict[str, str]  # what path templates, forms and `shows` are formatted with
    usernames: dict[str, str]  # actor -> username to sign in as
    bearers: dict[str, str]  # actor -> API token (guest: the manage token; forged: made up)
    manage_tokens: dict[str, str]  # actor -> the `?token=` it sends on booking pages
    owner_id: int
    booking_id: int


@pytest.fixture
def world(coach, sync, make_user, make_event_type, make_booking) -> World:
    today = NOW.date()
    override_day = today + timedelta(days=20)
    set_availability(coach, "UTC", dict.fromkeys(range(7), ALL_DAY), {override_day: []})
    intro = make_event_type(coach, slug="intro", title="Owner private intro")
    owner_token = create_api_token(coach, "owner laptop script")
    revoked = create_api_token(coach, "owner old script")
    feed_secret = new_token()
    coach.calendar_secret_hash = hash_token(feed_secret)

    rival = make_user("rex", expert=True, timezone="Asia/Tokyo")
    set_availability(rival, "Asia/Tokyo", {0: [(540, 1020)]})
    make_event_type(rival, slug="rival", title="Rival session")
    rival_token = create_api_token(rival, "rival script")
    rival_feed_secret = new_token()
    rival.calendar_secret_hash = hash_token(rival_feed_secret)

    client = make_user("cleo")
    client_token = create_api_token(client, "cleo script")
    booker = make_user("ann")
    booker_token = create_api_token(booker, "ann script")
    db.session.commit()
    db.session.execute(
        sa.update(ApiToken)
        .where(ApiToken.token_hash == hash_token(revoked))
        .values(revoked_at=utcnow())
    )
    db.session.commit()
    owner_token_id = db.session.scalar(
        sa.select(ApiToken.id).where(ApiToken.token_hash == hash_token(owner_token))
    )
    # A connected calendar (as a sync left it: no network in this test).
    connection = CalendarConnection(
        expert_id=coach.id, kind="ics", url="https://calendar.example/owner-private.ics"
    )
    connection.calendars.append(
        ConnectedCalendar(expert_id=coach.id, url=connection.url, name="Owner private calendar")
    )
    db.session.add(connection)
    db.session.commit()

    # The owner's account: an address not confirmed yet (its link mailed), a reset link
    # mailed, and two-factor enrolment begun (not finished, so the owner signs in without).
    coach.email_confirmed_at = None
    confirm_token = issue_email_token(coach, EmailToken.CONFIRM, utcnow())
    reset_token = issue_email_token(coach, EmailToken.RESET, utcnow())
    totp_secret = start_enrolment(coach)
    db.session.commit()

    booking, manage_token = make_booking(
        day_ahead(2, 10), client=booker, name="Ann Booker", email="ann.booker@example.com"
    )
    _other, other_manage_token = make_booking(
        day_ahead(2, 12), name="Gus Guest", email="gus.guest@example.com"
    )
    return World(
        values={
            "owner_username": coach.username,
            "event_type": str(intro.id),
            "event_type_title": intro.title,
            "event_type_of_booking": sync.title,
            "override_day": override_day.isoformat(),
            "new_override_day": (today + timedelta(days=30)).isoformat(),
            "today": today.isoformat(),
            "uid": booking.uid,
            "booking_email": booking.email,
            "new_start": day_ahead(3, 9).isoformat(),
            "owner_token": str(owner_token_id),
            "connection": str(connection.id),
            "calendar_name": connection.calendars[0].name,
            "token_name": "owner laptop script",
            "feed_secret": feed_secret,
            "other_feed_secret": rival_feed_secret,
            "forged_secret": new_token(),
            "owner_email": coach.email,
            "password": PASSWORD,
            "new_password": "a brand new passphrase",
            "reset_token": reset_token,
            "confirm_token": confirm_token,
            "totp_secret": totp_secret,
            "totp_code": pyotp.TOTP(totp_secret).now(),
        },
        usernames={"client": "cleo", "other_expert": "rex", "owner": "coach", "booker": "ann"},
        bearers={
            "client": client_token,
            "other_expert": rival_token,
            "owner": owner_token,
            "booker": booker_token,
            "revoked": revoked,
            "forged": "eb_" + new_token(),
            "guest": manage_token,
        },
        manage_tokens={
            "guest": manage_token,
            "forged": new_token(),
            "other_token": other_manage_token,
        },
        owner_id=coach.id,
        booking_id=booking.id,
    )


def snapshot(world: World) -> dict[str, Any]:
    """What the database holds of the owner's: the committed state, read afresh."""
    db.session.rollback()
    owner = db.session.get(User, world.owner_id)

    def links(purpose: str) -> list[int]:
        return db.session.scalars(
            sa.select(EmailToken.id)
            .where(EmailToken.user_id == owner.id, EmailToken.purpose == purpose)
            .order_by(EmailToken.id)
        ).all()

    booking = db.session.get(Booking, world.booking_id)
    event_types = db.session.scalars(
        sa.select(EventType).where(EventType.expert_id == owner.id).order_by(EventType.id)
    )
    tokens = db.session.scalars(
        sa.select(ApiToken).where(ApiToken.user_id == owner.id).order_by(ApiToken.id)
    )
    return {
        "event_types": [(e.id, e.slug, e.title, e.active, e.duration_minutes) for e in event_types],
        "availability": availability_payload(owner),
        "booking": (booking.status, booking.start_at, booking.sequence, booking.cancel_reason),
        "tokens": [(t.id, t.name, t.revoked_at is None) for t in tokens],
        "feed": owner.calendar_secret_hash,
        # The password and what hangs on it: the sessions, the reset links.
        "password": (owner.password_hash, owner.session_version, links(EmailToken.RESET)),
        "confirmation": (owner.email_confirmed_at is not None, links(EmailToken.CONFIRM)),
        "two_factor": (owner.totp_enabled_at is not None, owner.totp_secret),
        "calendars": [
            (c.id, c.url, [(k.id, k.blocks, k.writes) for k in c.calendars])
            for c in db.session.scalars(
                sa.select(CalendarConnection).where(CalendarConnection.expert_id == owner.id)
            )
        ],
    }


def csrf_token(client) -> str:
    """The CSRF token of the caller's session, from a page anyone may open."""
    page = client.get("/").get_data(as_text=True)
    match = CSRF_META.search(page)
    assert match, "no csrf-token meta on the page"
    return match.group(1)


def fill(template: str, world: World) -> str:
    return template.format(**world.values)


def call(client, auth, world: World, actor: str, route: Route, *, sign_in=True, **values: str):
    """`route` as `actor` calls it (signing in first unless told not to); `values` override
    the world's (a made-up uid)."""
    name, _, via = actor.partition("/")
    values = {**world.values, **values}
    url = route.path.format(**values)
    if sign_in and name in world.usernames and via != "bearer":
        response = auth.login(world.usernames[name])
        assert response.status_code == 302, f"{name} could not sign in"
    headers = {}
    if route.is_api:
        if name in world.bearers and via != "session":
            headers["Authorization"] = f"Bearer {world.bearers[name]}"
        if via == "session" and route.method not in SAFE_METHODS:
            headers["X-CSRFToken"] = csrf_token(client)
        return client.open(url, method=route.method, json=route.json, headers=headers)
    if name in world.manage_tokens and "{uid}" in route.path:
        url += "?token=" + world.manage_tokens[name]
    if route.method == "POST":
        data = {key: value.format(**values) for key, value in route.form.items()}
        return client.post(url, data={"csrf_token": csrf_token(client), **data})
    return client.open(url, method=route.method)


def redirect_path(response) -> str:
    return urlsplit(response.headers.get("Location", "")).path


def check_answer(response, expected: str, route: Route, world: World) -> None:
    status = response.status_code
    where = f"{status} {response.headers.get('Location', '')}".strip()
    if expected == "login":
        assert status == 302 and redirect_path(response) == "/auth/login", where
    elif expected == "profile":
        assert status == 302 and redirect_path(response) == "/profile", where
    elif expected in ("401", "403", "404"):
        assert status == int(expected), where
        if route.is_api:
            assert response.get_json()["error"]["code"], response.text
    elif isinstance(route.ok, int):
        assert expected == "allowed"
        assert status == route.ok, where
    else:
        assert expected == "allowed"
        assert status == 302 and redirect_path(response) == fill(route.ok, world), where


@pytest.mark.parametrize(
    ("actor", "method", "path", "expected"),
    [pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[2]}->{case[3]}") for case in CASES],
)
def test_authorization_matrix(client, auth, world, actor, method, path, expected):
    route = ROUTES[(method, path)]
    before = snapshot(world)

    response = call(client, auth, world, actor, route)

    check_answer(response, expected, route, world)
    name = actor.partition("/")[0]
    owns = route.owners is EVERYONE or name in route.owners
    if route.shows and response.status_code == 200:
        marker = fill(route.shows, world)
        body = response.get_data(as_text=True)
        if expected == "allowed" and owns:
            assert marker in body, f"{actor} should see {marker!r}"
        else:
            assert marker not in body, f"{actor} sees {marker!r}"
    after = snapshot(world)
    if expected == "allowed" and owns and route.changes:
        assert after[route.changes] != before[route.changes], f"{route.changes} unchanged"
        before.pop(route.changes)
        after.pop(route.changes)
    assert after == before, "a call that should change nothing of the owner's did"


def normalized(response) -> tuple:
    body = CSRF_VALUES.sub(r'\1"', response.get_data(as_text=True))
    return (
        response.status_code,
        response.headers.get("Content-Type"),
        response.headers.get("Location"),
        body,
    )


@pytest.mark.parametrize(
    ("actor", "route"),
    [
        pytest.param(actor, route, id=f"{actor}-{route.method}-{route.path}")
        for route in BOOKING_UID_ROUTES
        for actor in (STRANGERS_ON_API if route.is_api else STRANGERS_ON_PAGES)
    ],
)
def test_a_stranger_cannot_tell_a_booking_from_a_made_up_uid(client, auth, world, actor, route):
    before = snapshot(world)
    real = normalized(call(client, auth, world, actor, route))
    made_up = normalized(
        call(client, auth, world, actor, route, sign_in=False, uid=secrets.token_hex(12))
    )
    assert real[0] in (401, 404), real[:3]
    assert real == made_up
    assert snapshot(world) == before


def test_a_revoked_token_stops_working_and_another_expert_cannot_revoke_it(client, auth, world):
    me = {"Authorization": f"Bearer {world.bearers['owner']}"}
    revoke = ROUTES[("POST", "/dashboard/tokens/{owner_token}/revoke")]

    assert call(client, auth, world, "other_expert", revoke).status_code == 404
    assert client.get("/api/v1/event-types", headers=me).status_code == 200

    auth.logout()
    answer = call(client, auth, world, "owner", revoke)
    assert answer.status_code == 302 and redirect_path(answer) == "/dashboard/tokens"
    refused = client.get("/api/v1/event-types", headers=me)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"


def test_a_regenerated_feed_secret_retires_the_old_url(client, auth, world):
    old = f"/calendar/{world.values['feed_secret']}.ics"
    assert client.get(old).status_code == 200
    answer = call(client, auth, world, "owner", ROUTES[("POST", "/calendar/regenerate")])
    assert answer.status_code == 200
    new = re.search(r"/calendar/([A-Za-z0-9_-]+)\.ics", answer.get_data(as_text=True))
    assert new and new.group(1) != world.values["feed_secret"]
    assert client.get(old).status_code == 404
    assert client.get(f"/calendar/{new.group(1)}.ics").status_code == 200
