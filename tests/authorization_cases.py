"""The authorization matrix: who may read or change what, route by route, page and API.

Actors (see `test_authorization.py` for how each one calls):
- `anonymous`: no session, no token.
- `client`: a signed-in user who is not an expert and has no part in the resource.
- `other_expert`: a signed-in expert with event types, hours, tokens and a feed of their own.
- `owner`: the expert who owns the event type, the availability, the token and the feed, and
  who is the expert of the booking.
- `booker`: the signed-in client who made the booking.
- `guest`: no session, but the booking's manage token (`?token=`; on the API, as a bearer).
- `forged`: no session, a made-up manage token on pages, a made-up bearer token on the API.
- `other_token`: no session, the real manage token of another booking.
- `revoked`: the owner's API token after it was revoked.

On the API a signed-in actor calls twice: `actor/bearer` (a personal API token) and
`actor/session` (the browser session, with `X-CSRFToken` on unsafe methods).

Outcomes:
- `allowed`: the route's own success (`Route.ok`: a status, or a 302 to that path).
- `login`: 302 to /auth/login.
- `profile`: 302 to /profile (a signed-in non-expert is sent to Become an Expert).
- `404`: as unknown as a missing resource; on the API also the contract's "not yours".
- `401`: API without (valid) credentials; `403`: API caller is not an expert.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EVERYONE = frozenset({"*"})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    # What an allowed call answers: a status, or the path a 302 goes to.
    ok: int | str
    # Actors (by name, without `/bearer` or `/session`) who own what the route touches.
    owners: frozenset[str] = frozenset({"owner"})
    # The key of `snapshot()` an owner's allowed call changes; every other key stays.
    changes: str | None = None
    # Text (a template) in the answer that only owners may see.
    shows: str | None = None
    form: dict[str, str] = field(default_factory=dict)
    json: dict | None = None

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")


# Who gets what, by kind of route.
EXPERT_PAGE_ON_OWNED = {
    "anonymous": "login",
    "client": "profile",
    "other_expert": "404",
    "owner": "allowed",
}
# The other expert acts on their own (availability, tokens, a new event type, the feed).
EXPERT_PAGE_ON_OWN = {**EXPERT_PAGE_ON_OWNED, "other_expert": "allowed"}
API_REFUSED_WITHOUT_CREDENTIALS = {"anonymous": "401", "revoked": "401", "forged": "401"}
EXPERT_API_ON_OWNED = {
    **API_REFUSED_WITHOUT_CREDENTIALS,
    "client/bearer": "403",
    "client/session": "403",
    "other_expert/bearer": "404",
    "other_expert/session": "404",
    "owner/bearer": "allowed",
    "owner/session": "allowed",
}
EXPERT_API_ON_OWN = {
    **EXPERT_API_ON_OWNED,
    "other_expert/bearer": "allowed",
    "other_expert/session": "allowed",
}
BOOKING_PAGE = {
    "anonymous": "404",
    "client": "404",
    "other_expert": "404",
    "forged": "404",
    "other_token": "404",
    "owner": "allowed",
    "booker": "allowed",
    "guest": "allowed",
}
MY_BOOKINGS_PAGE = {
    "anonymous": "login",
    "guest": "login",
    "client": "allowed",
    "other_expert": "allowed",
    "owner": "allowed",
    "booker": "allowed",
}
SIGNED_IN_API = ("client", "other_expert", "owner", "booker")
BOOKING_API_LIST = {
    **API_REFUSED_WITHOUT_CREDENTIALS,
    "guest": "401",
    **{f"{actor}/{via}": "allowed" for actor in SIGNED_IN_API for via in ("bearer", "session")},
}
STRANGERS = ("client", "other_expert")
BOOKING_API_CANCEL = {
    **BOOKING_API_LIST,
    **{f"{actor}/{via}": "404" for actor in STRANGERS for via in ("bearer", "session")},
}
FEED_BY_SECRET = dict.fromkeys(("anonymous", "client", "other_expert", "owner"), "allowed")
FEED_FORGED = dict.fromkeys(FEED_BY_SECRET, "404")
PUBLIC_PAGE = FEED_BY_SECRET
PUBLIC_API = dict.fromkeys(
    ("anonymous", "client/bearer", "other_expert/bearer", "owner/bearer"), "allowed"
)

BOOKERS = frozenset({"owner", "booker", "guest"})
# Account pages: each signed-in user acts on their own account only.
SIGNED_IN_PAGE = {
    "anonymous": "login",
    "client": "allowed",
    "other_expert": "allowed",
    "owner": "allowed",
    "booker": "allowed",
}
# Password reset and address confirmation: the mailed link is the key, whoever holds it.
MAILED_LINK = dict.fromkeys(("anonymous", "client", "other_expert", "owner"), "allowed")
MAILED_LINK_FORGED = dict.fromkeys(MAILED_LINK, "404")
# The second step of a log-in, without having passed the password in this session.
SECOND_STEP = dict.fromkeys(("anonymous", "client", "other_expert", "owner"), "login")
NEW_PASSWORD = {"password": "{new_password}", "confirm": "{new_password}"}
EVENT_TYPE_FORM = {
    "title": "Taken over",
    "slug": "intro",
    "duration_minutes": "45",
    "location": "zoom",
    "buffer_before_minutes": "0",
    "buffer_after_minutes": "0",
    "min_notice_minutes": "0",
    "max_days_ahead": "60",
    "active": "y",
}

TABLE: list[tuple[Route, dict[str, str]]] = [
    # Event types: dashboard pages and forms.
    (Route("GET", "/dashboard/", 200, shows="{event_type_title}"), EXPERT_PAGE_ON_OWN),
    (Route("GET", "/dashboard/event-types/new", 200), EXPERT_PAGE_ON_OWN),
    (
        Route("POST", "/dashboard/event-types/new", "/dashboard/", changes="event_types",
              form={**EVENT_TYPE_FORM, "title": "Brand new", "slug": "brand-new"}),
        EXPERT_PAGE_ON_OWN,
    ),
    (
        Route("GET", "/dashboard/event-types/{event_type}/edit", 200, shows="{event_type_title}"),
        EXPERT_PAGE_ON_OWNED,
    ),
    (
        Route("POST", "/dashboard/event-types/{event_type}/edit", "/dashboard/",
              changes="event_types", form=EVENT_TYPE_FORM),
        EXPERT_PAGE_ON_OWNED,
    ),
    (
        Route("POST", "/dashboard/event-types/{event_type}/toggle", "/dashboard/",
              changes="event_types"),
        EXPERT_PAGE_ON_OWNED,
    ),
    (
        Route("POST", "/dashboard/event-types/{event_type}/delete", "/dashboard/",
              changes="event_types"),
        EXPERT_PAGE_ON_OWNED,
    ),
    # Event types: API.
    (Route("GET", "/api/v1/event-types", 200, shows="{event_type_title}"), EXPERT_API_ON_OWN),
    (
        Route("POST", "/api/v1/event-types", 201, changes="event_types",
              json={"title": "By API", "slug": "by-api", "duration_minutes": 20}),
        EXPERT_API_ON_OWN,
    ),
    (
        Route("GET", "/api/v1/event-types/{event_type}", 200, shows="{event_type_title}"),
        EXPERT_API_ON_OWNED,
    ),
    (
        Route("PATCH", "/api/v1/event-types/{event_type}", 200, changes="event_types",
              json={"title": "Taken over", "active": False}),
        EXPERT_API_ON_OWNED,
    ),
    (
        Route("DELETE", "/api/v1/event-types/{event_type}", 204, changes="event_types"),
        EXPERT_API_ON_OWNED,
    ),
    # Event types: public by design (active ones, for anyone).
    (Route("GET", "/{owner_username}/intro", 200, owners=EVERYONE, shows="{event_type_title}"),
     PUBLIC_PAGE),
    (
        Route("GET", "/api/v1/experts/{owner_username}/event-types", 200, owners=EVERYONE,
              shows="{event_type_title}"),
        PUBLIC_API,
    ),
    (
        Route("GET", "/api/v1/event-types/{event_type}/slots?from={today}&to={today}", 200,
              owners=EVERYONE),
        PUBLIC_API,
    ),
    # Availability: dashboard.
    (
        Route("GET", "/dashboard/availability", 200,
              shows="/availability/overrides/{override_day}/delete"),
        EXPERT_PAGE_ON_OWN,
    ),
    (
        Route("POST", "/dashboard/availability", "/dashboard/availability",
              changes="availability",
              form={"timezone": "Europe/Berlin", "mon-start": "09:00", "mon-end": "12:00"}),
        EXPERT_PAGE_ON_OWN,
    ),
    (
        Route("POST", "/dashboard/availability/overrides", "/dashboard/availability",
              changes="availability", form={"date": "{new_override_day}", "day_off": "y"}),
        EXPERT_PAGE_ON_OWN,
    ),
    (
        Route("POST", "/dashboard/availability/overrides/{override_day}/delete",
              "/dashboard/availability", changes="availability"),
        EXPERT_PAGE_ON_OWN,
    ),
    # Availability: API.
    (Route("GET", "/api/v1/availability", 200, shows="{override_day}"), EXPERT_API_ON_OWN),
    (
        Route("PUT", "/api/v1/availability", 200, changes="availability",
              json={"timezone": "Europe/Berlin", "weekly": {"mon": [["09:00", "12:00"]]}}),
        EXPERT_API_ON_OWN,
    ),
    # Bookings: pages.
    (Route("GET", "/bookings", 200, owners=BOOKERS, shows="{uid}"), MY_BOOKINGS_PAGE),
    (Route("GET", "/bookings/{uid}", 200, owners=BOOKERS, shows="{booking_email}"), BOOKING_PAGE),
    (Route("GET", "/bookings/{uid}.ics", 200, owners=BOOKERS, shows="UID:{uid}@"), BOOKING_PAGE),
    (
        Route("POST", "/bookings/{uid}/cancel", "/bookings/{uid}", owners=BOOKERS,
              changes="booking", form={"reason": "Not my booking"}),
        BOOKING_PAGE,
    ),
    (
        Route("GET", "/bookings/{uid}/reschedule", 200, owners=BOOKERS,
              shows="{event_type_of_booking}"),
        BOOKING_PAGE,
    ),
    (
        Route("POST", "/bookings/{uid}/reschedule", "/bookings/{uid}", owners=BOOKERS,
              changes="booking", form={"start": "{new_start}"}),
        BOOKING_PAGE,
    ),
    # Bookings: API.
    (
        Route("GET", "/api/v1/bookings?role=expert", 200, shows="{uid}"),
        BOOKING_API_LIST,
    ),
    (
        Route("GET", "/api/v1/bookings?role=client", 200, owners=frozenset({"booker"}),
              shows="{uid}"),
        BOOKING_API_LIST,
    ),
    (
        Route("POST", "/api/v1/bookings/{uid}/cancel", 200, owners=BOOKERS, changes="booking",
              json={"reason": "Not my booking"}),
        BOOKING_API_CANCEL,
    ),
    # API tokens: dashboard (the API's bearer check is the `revoked` and `forged` actors above).
    (Route("GET", "/dashboard/tokens", 200, shows="{token_name}"), EXPERT_PAGE_ON_OWN),
    (
        Route("POST", "/dashboard/tokens", 200, changes="tokens", form={"name": "fresh one"}),
        EXPERT_PAGE_ON_OWN,
    ),
    (
        Route("POST", "/dashboard/tokens/{owner_token}/revoke", "/dashboard/tokens",
              changes="tokens"),
        EXPERT_PAGE_ON_OWNED,
    ),
    # Connected calendars: dashboard and API (connecting and syncing call out: tested with
    # real servers in tests/calendars and tests/dashboard/test_calendars.py).
    (Route("GET", "/dashboard/calendars", 200, shows="{calendar_name}"), EXPERT_PAGE_ON_OWN),
    (
        Route("POST", "/dashboard/calendars/{connection}/settings", "/dashboard/calendars",
              changes="calendars", form={}),
        EXPERT_PAGE_ON_OWNED,
    ),
    (
        Route("POST", "/dashboard/calendars/{connection}/remove", "/dashboard/calendars",
              changes="calendars"),
        EXPERT_PAGE_ON_OWNED,
    ),
    (Route("GET", "/api/v1/calendars", 200, shows="{calendar_name}"), EXPERT_API_ON_OWN),
    (
        Route("PATCH", "/api/v1/calendars/{connection}", 200, json={"calendars": []}),
        EXPERT_API_ON_OWNED,
    ),
    (
        Route("DELETE", "/api/v1/calendars/{connection}", 204, changes="calendars"),
        EXPERT_API_ON_OWNED,
    ),
    # The calendar feed: its secret URL is the key, whoever holds it.
    (Route("GET", "/calendar/{feed_secret}.ics", 200, owners=EVERYONE, shows="UID:{uid}@"),
     FEED_BY_SECRET),
    (Route("GET", "/calendar/{other_feed_secret}.ics", 200, owners=frozenset(),
           shows="UID:{uid}@"), FEED_BY_SECRET),
    (Route("GET", "/calendar/{forged_secret}.ics", 200), FEED_FORGED),
    (Route("POST", "/calendar/regenerate", 200, changes="feed"), EXPERT_PAGE_ON_OWN),
    # Accounts: password, two-factor sign-in, address confirmation (each on one's own).
    (Route("GET", "/account/password", 200), SIGNED_IN_PAGE),
    (
        Route("POST", "/account/password", "/profile", changes="password",
              form={"current_password": "{password}", **NEW_PASSWORD}),
        SIGNED_IN_PAGE,
    ),
    (Route("GET", "/account/two-factor", 200, shows="{totp_secret}"), SIGNED_IN_PAGE),
    (
        Route("POST", "/account/two-factor", 200, changes="two_factor",
              form={"code": "{totp_code}"}),
        SIGNED_IN_PAGE,
    ),
    (
        Route("POST", "/account/two-factor/recovery-codes", "/account/two-factor",
              form={"password": "{password}"}),
        SIGNED_IN_PAGE,
    ),
    (
        Route("POST", "/account/two-factor/disable", "/account/two-factor",
              form={"password": "{password}"}),
        SIGNED_IN_PAGE,
    ),
    (Route("POST", "/account/confirm-email", "/profile", changes="confirmation"),
     SIGNED_IN_PAGE),
    (Route("GET", "/auth/two-factor", "/auth/login"), SECOND_STEP),
    (Route("POST", "/auth/two-factor", "/auth/login", form={"code": "{totp_code}"}),
     SECOND_STEP),
    # Password reset: anyone may ask for the owner's mail; the link is the owner's key.
    (Route("GET", "/auth/reset", 200, owners=EVERYONE), MAILED_LINK),
    (
        Route("POST", "/auth/reset", "/auth/login", owners=EVERYONE, changes="password",
              form={"email": "{owner_email}"}),
        MAILED_LINK,
    ),
    (Route("GET", "/auth/reset/{reset_token}", 200, owners=EVERYONE), MAILED_LINK),
    (
        Route("POST", "/auth/reset/{reset_token}", "/auth/login", owners=EVERYONE,
              changes="password", form=NEW_PASSWORD),
        MAILED_LINK,
    ),
    (Route("GET", "/auth/reset/{forged_secret}", 200), MAILED_LINK_FORGED),
    (Route("POST", "/auth/reset/{forged_secret}", 200, form=NEW_PASSWORD), MAILED_LINK_FORGED),
    (
        Route("GET", "/auth/verify/{confirm_token}", "/profile", owners=EVERYONE,
              changes="confirmation"),
        MAILED_LINK,
    ),
    (Route("GET", "/auth/verify/{forged_secret}", 200), MAILED_LINK_FORGED),
]  # fmt: skip

ROUTES: dict[tuple[str, str], Route] = {(route.method, route.path): route for route, _ in TABLE}
assert len(ROUTES) == len(TABLE), "one row per (method, path)"

# The matrix: (actor, method, path template, expected outcome).
CASES: list[tuple[str, str, str, str]] = [
    (actor, route.method, route.path, expected)
    for route, outcomes in TABLE
    for actor, expected in outcomes.items()
]

# Routes that name a booking by uid, for the "nothing leaks" comparison.
BOOKING_UID_ROUTES = [route for route, _ in TABLE if "{uid}" in route.path]
STRANGERS_ON_PAGES = ("anonymous", "client", "other_expert", "forged", "other_token")
STRANGERS_ON_API = (
    "anonymous",
    "forged",
    "guest",
    "client/bearer",
    "client/session",
    "other_expert/bearer",
    "other_expert/session",
)
