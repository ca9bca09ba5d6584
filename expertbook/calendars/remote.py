"""Everything of calendar connections that crosses the network: ICS feeds and CalDAV servers.

One small interface (`check_url`, `fetch_feed`, `discover`, `calendar_events`, `put_event`,
`delete_event`) over one guarded HTTP layer. Experts type these addresses, and the server
fetches them, so every connection, redirects included, is checked where it is made: the
resolver that hands urllib3 the addresses to connect to refuses private ones, so the address
checked is the address connected to (no window for DNS rebinding between a check and the
connection). `check_url` checks the same thing up front for a clear early answer.

Failures come out as `RemoteError` with a sentence for the expert; the library's exception
is kept as `__cause__` only, and no message ever holds a password.

No Flask and no database here. Only plain sockets, so everything yields under eventlet.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urljoin, urlsplit

import caldav
import niquests
from caldav.elements import cdav
from caldav.lib import error as caldav_error
from caldav.search import CalDAVSearcher
from lxml import etree
from niquests import exceptions as http_errors
from niquests.adapters import HTTPAdapter
from urllib3.contrib.resolver.system import SystemResolver

CONNECT_TIMEOUT = 5  # seconds to establish a connection
READ_TIMEOUT = 20  # seconds the server may stay silent
TOTAL_TIMEOUT = 30  # a whole feed download, redirects included, however the bytes trickle
MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
MAX_URL_LENGTH = 2048
USER_AGENT = "ExpertBook calendar sync"

_CHUNK = 64 * 1024


class RemoteError(Exception):
    """A remote call failed; `.message` says why, in words for the expert."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UnsafeAddress(RemoteError):
    """The address resolves to a loopback, private, link-local or otherwise non-public host."""


@dataclass(frozen=True)
class RemoteCalendar:
    url: str
    name: str


# --- Addresses ---------------------------------------------------------------------------------

# NAT64 (RFC 6052) carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(address: str) -> bool:
    """Whether an IP address (as getaddrinfo gives it) is a public unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 address that carries an IPv4 one reaches that IPv4 host.
        if ip.ipv4_mapped is not None:
            return is_public_address(str(ip.ipv4_mapped))
        if ip.sixtofour is not None and not is_public_address(str(ip.sixtofour)):
            return False
        if ip in _NAT64:
            return is_public_address(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _private_message(host: str) -> str:
    return (
        f"That address points to a private network ({host}); "
        "only servers on the public internet can be used."
    )


class _Refused(OSError):
    """Raised inside urllib3 when a connection would go to a non-public address."""

    def __init__(self, host: str):
        super().__init__(_private_message(host))
        self.host = host


class _GuardedResolver(SystemResolver):
    """The system resolver, refusing hosts with any non-public address.

    urllib3 connects only to the addresses this returns, for every request and every
    redirect hop, so the check and the connection cannot disagree.
    """

    def __init__(self, allow_private: bool):
        super().__init__()
        self.allow_private = allow_private

    def getaddrinfo(self, host, port, family, type, proto=0, flags=0, **kwargs):  # noqa: A002
        records = super().getaddrinfo(host, port, family, type, proto, flags, **kwargs)
        if not self.allow_private:
            for *_, sockaddr in records:
                if not is_public_address(str(sockaddr[0])):
                    raise _Refused(host.decode() if isinstance(host, bytes) else str(host))
        return records


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args, **pool_kwargs):
        # urllib3-future otherwise starts a keep-alive watcher thread per connection pool;
        # our sessions live for one call, and we start no threads.
        pool_kwargs["background_watch_delay"] = None
        super().init_poolmanager(*args, **pool_kwargs)


def _session(allow_private: bool) -> niquests.Session:
    """A session whose every connection goes through the guarded resolver."""
    resolver = _GuardedResolver(allow_private)
    options = dict(
        resolver=resolver,
        disable_http3=True,  # QUIC would follow Alt-Svc to other ports over UDP
        happy_eyeballs=False,  # concurrent connects use threads
        # OCSP/CRL checks would open connections to third parties, outside our timeouts.
        revocation_configuration=None,
    )
    session = niquests.Session(**options)
    session.trust_env = False  # no proxies or .netrc credentials from the environment
    session.max_redirects = MAX_REDIRECTS
    session.headers["User-Agent"] = USER_AGENT
    for prefix in ("http://", "https://"):
        session.mount(prefix, _Adapter(max_retries=0, **options))
    return session


def _timeouts(remaining: float | None = None) -> tuple[float, float]:
    if remaining is None:
        return (CONNECT_TIMEOUT, READ_TIMEOUT)
    return (min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining))


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL, stripped (webcal:// becomes https://), if it may be fetched.

    Raises RemoteError for a malformed address or a host that does not resolve, and
    UnsafeAddress if any of the host's addresses is not public (unless allow_private).
    """
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise RemoteError(f"That address is too long (at most {MAX_URL_LENGTH} characters).")
    if re.search(r"[\x00-\x20\x7f]", url):
        raise RemoteError("That address contains spaces or control characters.")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in ("webcal", "webcals"):
        url = "https" + url[len(scheme) :]
        scheme = "https"
    if scheme not in ("http", "https"):
        raise RemoteError("The address must start with https:// (or http://).")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise RemoteError("That address is not valid.") from exc
    host = parts.hostname
    if not host:
        raise RemoteError("That address has no host name.")
    if parts.username is not None or parts.password is not None:
        raise RemoteError("Put the user name and password in their own fields, not in the address.")
    try:
        records = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RemoteError(f"Could not reach {host} (the name was not found).") from exc
    if not allow_private and any(not is_public_address(str(r[4][0])) for r in records):
        raise UnsafeAddress(_private_message(host))
    return url


# --- Errors in words ---------------------------------------------------------------------------


def _chain(exc: BaseException):
    """The exception and everything it wraps (causes, contexts, urllib3's `reason`)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([current.__cause__, current.__context__])
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))


def _status_message(status: int) -> str:
    if status == 401:
        return "The server refused the user name or password (401)."
    if status == 403:
        return "The server does not allow this account to do that (403)."
    if status in (404, 410):
        return f"Nothing was found at that address ({status})."
    if status == 429:
        return "The server asks us to slow down (429); it will be tried again later."
    if status >= 500:
        return f"The server had an error ({status})."
    return f"The server refused the request ({status})."


def _in_words(exc: BaseException, host: str) -> RemoteError:
    """A RemoteError for any failure of a remote call, the original kept as its cause."""
    chain = list(_chain(exc))

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    refused = next((e for e in chain if isinstance(e, _Refused)), None)
    if refused is not None:
        return UnsafeAddress(_private_message(refused.host))
    if isinstance(exc, RemoteError):
        return exc
    if has(ssl.SSLCertVerificationError) or (
        has(http_errors.SSLError) and "certificate" in str(exc).lower()
    ):
        return RemoteError("The server's TLS certificate could not be verified.")
    if has(http_errors.SSLError, ssl.SSLError):
        return RemoteError(f"A secure (TLS) connection to {host} could not be made.")
    if has(http_errors.ConnectTimeout):
        return RemoteError(f"Could not reach {host} within {CONNECT_TIMEOUT} seconds.")
    if has(http_errors.Timeout, TimeoutError):
        return RemoteError(f"The server did not answer within {READ_TIMEOUT} seconds.")
    if has(http_errors.TooManyRedirects):
        return RemoteError(f"The address redirected more than {MAX_REDIRECTS} times.")
    if has(socket.gaierror):
        return RemoteError(f"Could not reach {host} (the name was not found).")
    if has(ConnectionRefusedError):
        return RemoteError(f"Could not reach {host} (connection refused).")
    if has(caldav_error.AuthorizationError):
        status = next((e.status for e in chain if getattr(e, "status", None)), 401)
        return RemoteError(_status_message(status))
    if has(caldav_error.RateLimitError):
        return RemoteError(_status_message(429))
    if has(caldav_error.NotFoundError):
        return RemoteError(_status_message(404))
    if has(http_errors.ConnectionError, ConnectionError):
        return RemoteError(f"Could not reach {host} (the connection was closed).")
    if has(etree.LxmlError, caldav_error.DAVError):
        return RemoteError(f"{host} did not answer as a CalDAV server.")
    if has(http_errors.RequestException, OSError):
        return RemoteError(f"Could not reach {host}.")
    return RemoteError(f"The calendar server at {host} could not be used.")


class _Translated:
    """`with _Translated(url):` turns any failure inside into a RemoteError, and ends the
    block after TOTAL_TIMEOUT however the server trickles its bytes (the per-read timeout
    alone lets a server that sends one byte a second hold a call forever).

    The deadline is eventlet's Timeout, raised in the green thread at its next wait: the
    server runs on eventlet (config.Config.ASYNC_MODE). In a process without it (tests,
    scripts) the per-read timeouts still apply."""

    def __init__(self, url: str):
        self.host = urlsplit(url).hostname or url
        self.deadline = None

    def __enter__(self):
        if _green():
            import eventlet

            self.deadline = eventlet.Timeout(TOTAL_TIMEOUT)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.deadline is not None:
            self.deadline.cancel()
            if exc is self.deadline:
                raise RemoteError(
                    f"{self.host} did not finish answering within {TOTAL_TIMEOUT} seconds."
                ) from None
        if exc is None or not isinstance(exc, Exception):
            return False
        translated = _in_words(exc, self.host)
        if translated is exc:
            return False
        raise translated from exc


def _green() -> bool:
    """True in a process whose sockets eventlet has made green (the server)."""
    import sys

    patcher = sys.modules.get("eventlet.patcher")
    return patcher is not None and patcher.is_monkey_patched("socket")


# --- ICS feeds -----------------------------------------------------------------------------


def fetch_feed(url: str, *, allow_private: bool, max_bytes: int = MAX_FEED_BYTES) -> bytes:
    """The body of an iCalendar feed, whatever its content type (the parser judges).

    Follows up to MAX_REDIRECTS redirects, each hop checked again; gives up after
    TOTAL_TIMEOUT seconds overall or past `max_bytes`. Raises RemoteError (UnsafeAddress
    for a non-public host) with the reason in words.
    """
    deadline = time.monotonic() + TOTAL_TIMEOUT
    url = check_url(url, allow_private=allow_private)
    with _session(allow_private) as session:
        for _hop in range(MAX_REDIRECTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RemoteError(f"The feed did not arrive within {TOTAL_TIMEOUT} seconds.")
            with _Translated(url):
                response = session.get(
                    url,
                    stream=True,
                    allow_redirects=False,
                    timeout=_timeouts(remaining),
                    headers={"Accept": "text/calendar, */*;q=0.5"},
                )
            with response:
                if response.is_redirect and response.headers.get("Location"):
                    url = check_url(
                        urljoin(url, response.headers["Location"]), allow_private=allow_private
                    )
                    continue
                if response.status_code >= 300:
                    raise RemoteError(_feed_status_message(response.status_code))
                return _read_body(response, url, deadline, max_bytes)
        raise RemoteError(f"The address redirected more than {MAX_REDIRECTS} times.")


def _feed_status_message(status: int) -> str:
    if status in (401, 403):
        return f"The feed needs a password or is not shared ({status})."
    return _status_message(status)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


def _read_body(response, url: str, deadline: float, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise RemoteError(f"The feed is larger than {_size(max_bytes)}.")
    body = bytearray()
    with _Translated(url):
        # Chunks come as they arrive (read1), so a trickle meets the deadline check.
        for chunk in response.iter_content(chunk_size=_CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise RemoteError(f"The feed is larger than {_size(max_bytes)}.")
            if time.monotonic() > deadline:
                raise RemoteError(f"The feed did not arrive within {TOTAL_TIMEOUT} seconds.")
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
        timeout=_timeouts(),
        enable_rfc6764=False,  # DNS SRV/TXT lookups would bypass the address check
    )
    client.session.close()
    client.session = _session(allow_private)
    return client


def discover(
    url: str, username: str, password: str, *, allow_private: bool
) -> list[RemoteCalendar]:
    """The event calendars reachable from `url` (server root, principal or calendar URL).

    A calendar URL gives just that calendar; any other URL gives the calendars of the
    user's principal (found through current-user-principal), without task-only lists.
    Raises RemoteError for bad credentials or a server that does not speak CalDAV.
    """
    url = check_url(url, allow_private=allow_private)
    host = urlsplit(url).hostname
    with _Translated(url), _client(url, username, password, allow_private) as client:
        response = client.propfind(url, props=_CALENDAR_PROPS, depth=0)
        if response.status in (404, 410):
            raise RemoteError(_status_message(response.status))
        if response.status != 207 or not response.results:
            # A web page or a plain web server: caldav would guess on and find nothing.
            raise RemoteError(f"{host} did not answer as a CalDAV server.")
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


_RESOURCETYPE = "{DAV:}resourcetype"
_DISPLAYNAME = "{DAV:}displayname"
_COMPONENTS = "{urn:ietf:params:xml:ns:caldav}supported-calendar-component-set"
_CALENDAR = "{urn:ietf:params:xml:ns:caldav}calendar"
_CALENDAR_PROPS = [_RESOURCETYPE, _DISPLAYNAME, _COMPONENTS]


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
    url = check_url(url, allow_private=allow_private)
    searcher = CalDAVSearcher(event=True, start=start, end=end)
    query, _ = searcher.build_search_xml_query()
    body = etree.tostring(query.xmlelement(), encoding="utf-8", xml_declaration=True)
    with _Translated(url), _client(url, username, password, allow_private) as client:
        response = client.report(url, body, depth=1)
        if response.status >= 300:
            raise RemoteError(_status_message(response.status))
        if response.tree is None:
            raise RemoteError(f"{urlsplit(url).hostname} did not answer as a CalDAV server.")
    # Straight from the parsed multistatus: caldav's per-object bookkeeping would triple
    # the time for thousands of events, and only the data is wanted.
    return [
        element.text.encode()
        for element in response.tree.iter(cdav.CalendarData.tag)
        if element.text and element.text.strip()
    ]


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
        _Translated(calendar_url),
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
        raise RemoteError(_status_message(status))


def delete_event(
    calendar_url: str, username: str, password: str, *, uid: str, allow_private: bool
) -> None:
    """Remove the event object with `uid`; one already gone counts as removed."""
    status = _object_status(
        calendar_url, username, password, uid, allow_private,
        lambda client, target: client.delete(target),
    )  # fmt: skip
    if status >= 300 and status not in (404, 410):
        raise RemoteError(_status_message(status))
