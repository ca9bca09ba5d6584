"""Everything of calendar connections that crosses the network: ICS feeds and CalDAV servers.

One small interface over the guarded HTTP layer (net.py): `check_url`, `fetch_feed` (and
`fetch_feed_if_changed`, a conditional GET), `discover`, `CalDAVAccount` (one account's
session for a sync: its calendars, a calendar's sync token, REPORT answers as raw bytes, for
a child process to read when they are large), `calendar_events`, `put_event`, `delete_event`.

Failures come out as `RemoteError` with a sentence for the expert; no message ever holds a
password. No Flask and no database here. Only plain sockets, so everything yields under
eventlet.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urljoin, urlsplit

import caldav
import caldav.davclient  # noqa: F401 - caldav imports it lazily: at startup, not mid-request
from caldav.lib.auth import extract_auth_types

from . import davxml, net
from .net import RemoteError, UnsafeAddress, check_url, status_error, status_message

__all__ = [
    "CalDAVAccount",
    "Feed",
    "RemoteCalendar",
    "RemoteError",
    "TokenRefused",
    "TooLarge",
    "UnsafeAddress",
    "calendar_events",
    "check_url",
    "delete_event",
    "discover",
    "fetch_feed",
    "fetch_feed_if_changed",
    "put_event",
]

MAX_FEED_BYTES = 10 * 1024 * 1024
# A REPORT answer wraps the same data in XML: room for a feed's worth of events and more.
MAX_ANSWER_BYTES = 3 * MAX_FEED_BYTES
MAX_VALIDATOR = 255  # characters of an ETag or Last-Modified worth keeping
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RemoteCalendar:
    url: str
    name: str


class TooLarge(RemoteError):
    """An answer or feed past its size limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class TokenRefused(RemoteError):
    """The server no longer knows the sync token (RFC 6578, DAV:valid-sync-token): read the
    whole calendar again."""


# --- ICS feeds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """A feed's answer: its body, or None when it did not change since the validators sent
    (304); the validators to send next time."""

    body: bytes | None
    etag: str
    modified: str


def fetch_feed(url: str, *, allow_private: bool, max_bytes: int = MAX_FEED_BYTES) -> bytes:
    """The body of an iCalendar feed, whatever its content type (the parser judges).

    Follows up to MAX_REDIRECTS redirects, each hop checked again; gives up after
    TOTAL_TIMEOUT seconds overall or past `max_bytes`. Raises RemoteError (UnsafeAddress
    for a non-public host) with the reason in words.
    """
    return fetch_feed_if_changed(url, allow_private=allow_private, max_bytes=max_bytes).body


def fetch_feed_if_changed(
    url: str,
    *,
    allow_private: bool,
    etag: str = "",
    modified: str = "",
    max_bytes: int = MAX_FEED_BYTES,
) -> Feed:
    """fetch_feed, asking the server to answer 304 (body None) when the feed has not
    changed since the response that gave `etag` / `modified` (If-None-Match,
    If-Modified-Since)."""
    deadline = time.monotonic() + net.TOTAL_TIMEOUT
    url = check_url(url, allow_private=allow_private)
    headers = {"Accept": "text/calendar, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    with net.session(allow_private) as session:
        for _hop in range(net.MAX_REDIRECTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RemoteError(f"The feed did not arrive within {net.TOTAL_TIMEOUT} seconds.")
            with net.Translated(url):
                response = session.get(
                    url,
                    stream=True,
                    allow_redirects=False,
                    timeout=net.timeouts(remaining),
                    headers=headers,
                )
            with response:
                if response.is_redirect and response.headers.get("Location"):
                    url = check_url(
                        urljoin(url, response.headers["Location"]), allow_private=allow_private
                    )
                    continue
                if response.status_code == 304 and (etag or modified):
                    return Feed(None, etag, modified)
                if response.status_code >= 300:
                    raise status_error(
                        response.status_code, _feed_status_message(response.status_code)
                    )
                body = _read_body(response, url, deadline, max_bytes, "feed")
                return Feed(
                    body,
                    _validator(response.headers.get("ETag")),
                    _validator(response.headers.get("Last-Modified")),
                )
        raise RemoteError(f"The address redirected more than {net.MAX_REDIRECTS} times.")


def _validator(value: str | None) -> str:
    """A response's ETag or Last-Modified, if it is fit to send back."""
    value = (value or "").strip()
    return value if len(value) <= MAX_VALIDATOR and value.isprintable() else ""


def _feed_status_message(status: int) -> str:
    if status in (401, 403):
        return f"The feed needs a password or is not shared ({status})."
    return status_message(status)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


def _read_body(response, url: str, deadline: float, max_bytes: int, what: str) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"The {what} is larger than {_size(max_bytes)}.")
    body = bytearray()
    with net.Translated(url):
        # Chunks come as they arrive (read1), so a trickle meets the deadline check.
        for chunk in response.iter_content(chunk_size=_CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise TooLarge(f"The {what} is larger than {_size(max_bytes)}.")
            if time.monotonic() > deadline:
                raise RemoteError(f"The {what} did not arrive within {net.TOTAL_TIMEOUT} seconds.")
    return bytes(body)


# --- CalDAV --------------------------------------------------------------------------------

_caldav_log = logging.getLogger("caldav")


class _OnlyWhenDebugging(logging.Filter):
    """caldav logs every odd answer of the server it talks to as a warning or an error with a
    traceback (a mistyped address gives half a dozen). Here those servers are the experts',
    and what went wrong reaches the caller as RemoteError; the records stay available to
    whoever sets the "caldav" logger to DEBUG to look into one server."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _caldav_log.isEnabledFor(logging.DEBUG)


_caldav_log.addFilter(_OnlyWhenDebugging())


def _client(url: str, username: str, password: str, allow_private: bool) -> caldav.DAVClient:
    client = caldav.DAVClient(
        url,
        username=username,
        password=password,
        timeout=net.timeouts(),
        enable_rfc6764=False,  # DNS SRV/TXT lookups would bypass the address check
    )
    client.session.close()
    client.session = net.session(allow_private)
    return client


class CalDAVAccount:
    """One CalDAV account for the length of a sync: one client, so the authentication the
    first call negotiates serves the others. Each call ends at its own deadline."""

    def __init__(self, url: str, username: str, password: str, *, allow_private: bool):
        self.url = check_url(url, allow_private=allow_private)
        self.allow_private = allow_private
        self.client = _client(self.url, username, password, allow_private)

    def __enter__(self) -> CalDAVAccount:
        return self

    def __exit__(self, *exc_info) -> None:
        self.client.close()

    def calendars(self) -> list[RemoteCalendar]:
        """The event calendars reachable from the account's URL (see `discover`)."""
        url, client = self.url, self.client
        host = urlsplit(url).hostname
        with net.Translated(url):
            response = client.propfind(url, props=_CALENDAR_PROPS, depth=0)
            if response.status in (404, 410):
                raise status_error(response.status)
            if response.status != 207 or not response.results:
                # A web page or a plain web server: caldav would guess on and find nothing.
                raise RemoteError(f"{host} did not answer as a CalDAV server.", permanent=True)
            props = response.results[0].properties
            if _CALENDAR in (props.get(_RESOURCETYPE) or []):
                if not _holds_events(props.get(_COMPONENTS)):
                    return []
                return [RemoteCalendar(url=url, name=_name(props.get(_DISPLAYNAME), url))]
            found = []
            for calendar in client.get_calendars(client.principal()):
                if _holds_events(calendar.get_supported_components()):
                    found.append(
                        RemoteCalendar(
                            url=str(calendar.url),
                            name=_name(calendar.get_display_name(), str(calendar.url)),
                        )
                    )
            return found

    def sync_token(self, calendar_url: str, *, patience: float | None = None) -> str | None:
        """The calendar's current sync token (RFC 6578), or None when the server answered
        without one (it does not support sync tokens, or not for this calendar).

        Raises RemoteError when it did not answer: a network failure, a server error, or
        no answer within `patience` seconds, if given. Radicale, asked for the first time
        for the token of a calendar no client has synced, first writes a history file for
        each event, seconds for thousands (14 s for 5,000 on a busy machine, past the read
        timeout), and finishes that on its own once asked: the caller reads without a token
        this time and asks again next time.
        """
        calendar_url = check_url(calendar_url, allow_private=self.allow_private)
        timeout = self.client.timeout
        if patience is not None:
            self.client.timeout = (net.CONNECT_TIMEOUT, patience)
        try:
            with net.Translated(calendar_url):
                response = self.client.propfind(calendar_url, props=[_SYNC_TOKEN], depth=0)
                if response.status in (401, 408, 429) or response.status >= 500:
                    raise status_error(response.status)
                if response.status != 207 or not response.results:
                    return None
                token = response.results[0].properties.get(_SYNC_TOKEN)
        finally:
            self.client.timeout = timeout
        return token if isinstance(token, str) and 0 < len(token) <= 2048 else None

    def report(self, calendar_url: str, body: bytes) -> bytes:
        """The raw multistatus answer of a REPORT on the calendar (depth 1), unparsed: a
        large one is read in a child process (parse_worker), not on the server's event loop.

        Raises:
            TokenRefused: a sync-collection whose token the server no longer knows.
            RemoteError: any other failure, in words.
        """
        calendar_url = check_url(calendar_url, allow_private=self.allow_private)
        deadline = time.monotonic() + net.TOTAL_TIMEOUT
        for attempt in range(2):
            with net.Translated(calendar_url):
                response = self.client.session.request(
                    "REPORT",
                    calendar_url,
                    data=body,
                    headers={"Depth": "1", "Content-Type": 'application/xml; charset="utf-8"'},
                    auth=self.client.auth,
                    timeout=net.timeouts(),
                    stream=True,
                )
            with response:
                challenge = response.headers.get("WWW-Authenticate")
                if response.status_code == 401 and attempt == 0 and challenge:
                    # No call negotiated the scheme yet: the library picks it, as it would.
                    self.client.build_auth_object(list(extract_auth_types(challenge)))
                    continue
                answer = _read_body(response, calendar_url, deadline, MAX_ANSWER_BYTES, "answer")
                if response.status_code in (403, 409, 412) and b"valid-sync-token" in answer:
                    raise TokenRefused("The server no longer knows the sync token.")
                if response.status_code != 207:
                    raise status_error(response.status_code)
                return answer
        raise status_error(401)


def discover(
    url: str, username: str, password: str, *, allow_private: bool
) -> list[RemoteCalendar]:
    """The event calendars reachable from `url` (server root, principal or calendar URL).

    A calendar URL gives just that calendar; any other URL gives the calendars of the
    user's principal (found through current-user-principal), without task-only lists.
    Raises RemoteError for bad credentials or a server that does not speak CalDAV.
    """
    with CalDAVAccount(url, username, password, allow_private=allow_private) as account:
        return account.calendars()


_RESOURCETYPE = "{DAV:}resourcetype"
_DISPLAYNAME = "{DAV:}displayname"
_COMPONENTS = "{urn:ietf:params:xml:ns:caldav}supported-calendar-component-set"
_CALENDAR = "{urn:ietf:params:xml:ns:caldav}calendar"
_CALENDAR_PROPS = [_RESOURCETYPE, _DISPLAYNAME, _COMPONENTS]
_SYNC_TOKEN = "{DAV:}sync-token"


def _holds_events(components) -> bool:
    # A calendar that does not say what it holds may hold anything (RFC 4791, 5.2.3).
    return not components or "VEVENT" in components


def _name(display_name: str | None, url: str) -> str:
    return display_name or url.rstrip("/").rsplit("/", 1)[-1]


def calendar_events(
    url: str,
    username: str,
    password: str,
    *,
    start: datetime,
    end: datetime,
    allow_private: bool,
) -> list[bytes]:
    """The raw iCalendar data of the calendar's event objects touching [start, end).

    One calendar-query REPORT with a time range and no server-side expansion: a recurring
    event comes back as its master with its exceptions, for the caller to expand.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware datetimes")
    with CalDAVAccount(url, username, password, allow_private=allow_private) as account:
        answer = account.report(account.url, davxml.query_body(start, end, with_data=True))
    try:
        listing = davxml.read_listing(answer, sync=False)
    except ValueError:
        raise RemoteError(f"{urlsplit(url).hostname} did not answer as a CalDAV server.") from None
    return [item.data.encode() for item in listing.objects if item.data]


def _object_url(calendar_url: str, uid: str) -> str:
    """Where the event with `uid` lives: `<uid>.ics`, or a hash of it for an unusual UID."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", uid):
        name = uid
    else:
        name = hashlib.sha256(uid.encode()).hexdigest()[:40]
    return calendar_url.rstrip("/") + "/" + quote(name) + ".ics"


def _object_status(
    calendar_url: str, username: str, password: str, uid: str, allow_private: bool, call
) -> int:
    """The status of `call(client, object_url)` on the event object with `uid`."""
    calendar_url = check_url(calendar_url, allow_private=allow_private)
    target = _object_url(calendar_url, uid)
    with (
        net.Translated(calendar_url),
        _client(calendar_url, username, password, allow_private) as client,
    ):
        return call(client, target).status


def put_event(
    calendar_url: str, username: str, password: str, *, uid: str, ics: bytes, allow_private: bool
) -> None:
    """Create or replace the event object with `uid` in the calendar."""
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    status = _object_status(
        calendar_url, username, password, uid, allow_private,
        lambda client, target: client.put(target, ics, headers),
    )  # fmt: skip
    if status >= 300:
        raise status_error(status)


def delete_event(
    calendar_url: str, username: str, password: str, *, uid: str, allow_private: bool
) -> None:
    """Remove the event object with `uid`; one already gone counts as removed."""
    status = _object_status(
        calendar_url, username, password, uid, allow_private,
        lambda client, target: client.delete(target),
    )  # fmt: skip
    if status >= 300 and status not in (404, 410):
        raise status_error(status)
