"""Reading a connection's calendars over the network, fetching only what changed.

A calendar read for the first time, or for a wider window or another zone than its stored
objects were read for, is read whole, and fast, for the expert waits on a first read:

- CalDAV: a calendar-query for every event object, with no time range. Radicale answers it
  in half the time of one for the window (5,000 events: 0.5 s against 0.9-1.2 s; it scans
  every object either way). Past one-off events are skipped before icalendar (icstext),
  and only the objects with busy time in the window are kept (the next sync fetches the
  few others in the window once). When that read fails (too large to read, an object of
  the past that is damaged, a server that refuses a query without a time range), the
  calendar is read again for the window only; not when the server could not be reached or
  refused the password. It does not ask for the sync token: on Radicale that costs another
  0.3-0.5 s, seconds when no client has synced the calendar (it writes its sync history
  first). The next sync asks for it, as for any read without a token, and reads what
  changed by ETag.
- A feed: its body.

After that:

- CalDAV with a sync token: a sync-collection REPORT (RFC 6578) gives only what changed
  since, and what was removed; a token the server refuses means reading it whole again.
- CalDAV without one: the token asked for again (first, waiting at most TOKEN_PATIENCE; a
  server that answered it has none is asked again only after ASK_TOKEN_AGAIN), a
  calendar-query for ETags only, then a calendar-multiget of the objects whose ETag changed.
- A feed: a conditional GET (If-None-Match, If-Modified-Since); a 304, or the same body
  again, is not parsed.

Asking for the token is optional: whatever goes wrong with it, the calendar is read without
one this time. Runs outside any transaction; answers are read by parse_worker (in a child
process when large; the child is started early only when a calendar is to be read whole).
Raises remote.RemoteError or FeedError, whose messages are for experts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from . import davxml, parse_worker, remote
from .feeds import FeedError
from .parse_worker import FEED, QUERY, SYNC, ObjectRead, read

# A calendar read whole is read this far past the window, so the window, which moves a day
# each day, is read whole again only about once a month.
READ_AHEAD = timedelta(days=31)
MAX_URL = 2048
MAX_SYNC_PAGES = 20  # truncated sync-collection answers followed (RFC 6578, 3.6)
MULTIGET_BATCH = 500  # objects per calendar-multiget
# Seconds a read waits for the calendar's sync token before it reads by ETag without one
# (the next sync asks again): see remote.CalDAVAccount.sync_token. A server that keeps the
# token at hand answers in well under a second (Radicale, 5,000 events: 0.5 s); a "Sync now"
# never waits the whole read timeout for an optional answer.
TOKEN_PATIENCE = 10.0
# A server that answered it has no sync token is asked again this long after (it may have
# been upgraded), not on every sync. Where it said so is kept in the calendar's stored
# state: for CalDAV, `modified` (a feed's Last-Modified) holds NO_TOKEN and the time.
ASK_TOKEN_AGAIN = timedelta(days=1)
NO_TOKEN = "no sync token since "


@dataclass(frozen=True)
class CalendarState:
    """Where reading a calendar stands (from its ConnectedCalendar row)."""

    token: str = ""
    modified: str = ""  # a feed's Last-Modified; CalDAV: NO_TOKEN and when, or ""
    digest: str = ""
    read_until: datetime | None = None
    zone: str = ""
    etags: dict[str, str] = field(default_factory=dict)  # by href; loaded without a token


@dataclass
class CalendarRead:
    """What a sync read of one calendar: with `full`, every object it holds (in the window
    up to `read_until`); otherwise the objects that changed and the hrefs removed."""

    full: bool
    objects: list[ObjectRead]
    removed: set[str]
    token: str
    modified: str
    digest: str
    read_until: datetime
    zone: str


@dataclass(frozen=True)
class Remote:
    """What a connection's server said: its calendars and, for those read, what was read."""

    calendars: list[remote.RemoteCalendar]
    reads: dict[str, CalendarRead]  # by calendar URL


def read_remote(
    kind: str,
    url: str,
    username: str,
    password: str,
    *,
    start: datetime,
    end: datetime,
    zone: str,
    allow_private: bool,
    states: dict[str, CalendarState] | None = None,
    read_only: set[str] | None = None,
    now: datetime | None = None,
) -> Remote:
    """Discover the calendars behind a connection and read those in `read_only` (None: all
    of them) for the window [start, end), each from where its state says reading stands.
    Raises remote.RemoteError or FeedError."""
    states = states or {}
    now = now or datetime.now(UTC)
    if kind == "ics":
        name = urlsplit(url).hostname or "Calendar feed"
        found = _read_feed(url, states.get(url), start, end, zone, allow_private)
        return Remote([remote.RemoteCalendar(url, name)], {url: found})
    # Before the listing, for a first connect or a known calendar due to be read whole;
    # after it, for a calendar new since the last sync.
    if read_only is None:
        warmed = _warm_if_whole(list(states.values()) or [None], end, zone)
    else:
        warmed = _warm_if_whole([states.get(u) for u in read_only], end, zone)
    with remote.CalDAVAccount(url, username, password, allow_private=allow_private) as account:
        # What a server lists is checked like input: one entry per address, none too long.
        listed = account.calendars()
        calendars = list({c.url: c for c in listed if len(c.url) <= MAX_URL}.values())
        if not calendars:
            raise FeedError("No calendars with events were found at that address.")
        to_read = [c.url for c in calendars if read_only is None or c.url in read_only]
        if not warmed:
            _warm_if_whole([states.get(u) for u in to_read], end, zone)
        reads = {u: _read_calendar(account, u, states.get(u), start, end, zone, now)
                 for u in to_read}  # fmt: skip
    return Remote(calendars, reads)


def _warm_if_whole(states: list[CalendarState | None], end: datetime, zone: str) -> bool:
    """Start the parsing child now, so that its start (Python and the parsers' imports,
    about a quarter second) overlaps the server's answers, when a calendar is to be read
    whole (its answer may well be large). Not for a read of what changed: that is small as
    a rule, read in place, and a child started for it would sit idle in every process that
    syncs, tens of megabytes for good. Returns whether it did."""
    whole = any(_whole(state, end, zone) for state in states)
    if whole:
        parse_worker.warm()
    return whole


def _whole(state: CalendarState | None, end: datetime, zone: str) -> bool:
    """Whether the calendar must be read whole: never read, read for a shorter window, or
    in another zone (floating and all-day times move)."""
    return (
        state is None or state.read_until is None or end > state.read_until or (state.zone != zone)
    )


def _read_feed(url, state, start, end, zone, allow_private) -> CalendarRead:
    whole = _whole(state, end, zone)
    if whole:
        parse_worker.warm()  # while the server answers
    feed = remote.fetch_feed_if_changed(
        url,
        allow_private=allow_private,
        etag="" if whole else state.token,
        modified="" if whole else state.modified,
    )
    digest = hashlib.sha256(feed.body).hexdigest() if feed.body is not None else ""
    if not whole and (feed.body is None or digest == state.digest):
        return CalendarRead(False, [], set(), feed.etag, feed.modified, state.digest,
                            state.read_until, state.zone)  # fmt: skip
    until = end + READ_AHEAD
    got = read(FEED, feed.body, start=start, end=until, default_tz=zone)
    return CalendarRead(True, got.objects, set(), feed.etag, feed.modified, digest, until, zone)


def _read_calendar(account, url, state, start, end, zone, now) -> CalendarRead:
    if not _whole(state, end, zone):
        until = state.read_until
        try:
            if state.token:
                objects, removed, token = _changes(account, url, state.token, start, until, zone)
                said = ""
            else:
                # Asked before the listing, so what changes during it comes again from the
                # token; a server that did not name one last time may name one now.
                token, said = _token(account, url, state.modified, TOKEN_PATIENCE, now)
                objects, removed = _changed_by_etag(account, url, state.etags, start, until, zone)
            return CalendarRead(False, objects, removed, token, said, "", until, zone)
        except remote.TokenRefused:
            pass  # read it whole
    until = end + READ_AHEAD
    try:
        got = _queried(account, url, None, None, start, until, zone)
        got.objects = [found for found in got.objects if found.busy]
    except (FeedError, remote.RemoteError) as error:
        if not _read_window_instead(error):
            raise
        got = _queried(account, url, start, until, start, until, zone)
    objects = got.objects + _fetched(account, url, list(got.listed), start, until, zone)[0]
    # No token (see the module's docstring); what the server said of tokens is kept.
    said = state.modified if state and _said_no_token(state.modified) else ""
    return CalendarRead(True, objects, set(), "", said, "", until, zone)


def _read_window_instead(error: FeedError | remote.RemoteError) -> bool:
    """Whether a failed read of every event may succeed for the window: not when the server
    could not be reached, timed out, refused the password or has no such calendar."""
    if isinstance(error, FeedError | remote.TooLarge):
        return True
    return error.status is not None and error.status not in (401, 404, 410)


def _queried(
    account, url, first, last, start, until, zone, *, with_data: bool = True
) -> parse_worker.Read:
    """The calendar-query answer for the objects touching [first, last) (all of them for
    None), with their data unless told not, read for the window [start, until)."""
    answer = account.report(url, davxml.query_body(first, last, with_data=with_data))
    return read(QUERY, answer, start=start, end=until, default_tz=zone)


def _token(account, url, said: str, patience: float, now: datetime) -> tuple[str, str]:
    """The calendar's sync token ("" for none this time), and what to keep of the server's
    word on it: NO_TOKEN and the time it said it has none, or "".

    A server that said so less than ASK_TOKEN_AGAIN ago is not asked. Any failure of this
    optional request (no answer within `patience`, a refused or broken connection, an odd
    answer) means no token this time, and asking again next time: the read goes on without.
    """
    since = _said_no_token(said)
    if since is not None and timedelta(0) <= now - since < ASK_TOKEN_AGAIN:
        return "", said
    try:
        token = account.sync_token(url, patience=patience)
    except Exception:  # noqa: BLE001 - optional: whatever went wrong, read without it
        return "", ""
    if token is None:
        return "", NO_TOKEN + now.isoformat(timespec="seconds")
    return token, ""


def _said_no_token(said: str) -> datetime | None:
    if not said.startswith(NO_TOKEN):
        return None
    try:
        since = datetime.fromisoformat(said.removeprefix(NO_TOKEN))
    except ValueError:
        return None
    return since if since.tzinfo is not None else None


def _changes(account, url, token, start, until, zone):
    """The objects changed and the hrefs removed since `token` (sync-collection), and the
    new token. Raises remote.TokenRefused."""
    objects: list[ObjectRead] = []
    removed: set[str] = set()
    for _page in range(MAX_SYNC_PAGES):
        got = read(SYNC, account.report(url, davxml.sync_body(token)),
                   start=start, end=until, default_tz=zone)  # fmt: skip
        fetched, gone = _fetched(account, url, list(got.listed), start, until, zone)
        objects += got.objects + fetched
        removed |= set(got.removed) | gone
        if not got.token:
            raise remote.TokenRefused("The server gave no sync token.")
        moved_on = got.token != token
        token = got.token
        if not (got.truncated and moved_on):
            break
    changed = {found.href for found in objects}
    return objects, removed - changed, token


def _changed_by_etag(account, url, known, start, until, zone):
    """The objects whose ETag changed and the hrefs no longer listed (calendar-query for
    ETags only, then calendar-multiget)."""
    got = _queried(account, url, start, until, start, until, zone, with_data=False)
    listed = dict(got.listed)
    listed.update({found.href: found.etag for found in got.objects})
    changed = [href for href, etag in listed.items() if not etag or known.get(href) != etag]
    objects, gone = _fetched(account, url, changed, start, until, zone)
    return objects, (set(known) - set(listed)) | gone


def _fetched(account, url, hrefs, start, until, zone) -> tuple[list[ObjectRead], set[str]]:
    """The objects at `hrefs` (calendar-multiget), and the hrefs the server no longer has."""
    objects: list[ObjectRead] = []
    gone: set[str] = set()
    for first in range(0, len(hrefs), MULTIGET_BATCH):
        batch = hrefs[first : first + MULTIGET_BATCH]
        got = read(QUERY, account.report(url, davxml.multiget_body(batch)),
                   start=start, end=until, default_tz=zone)  # fmt: skip
        objects += got.objects
        gone |= set(got.removed)
    return objects, gone
