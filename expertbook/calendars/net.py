"""The guarded HTTP layer under every calendar call: address checks, sessions, deadlines,
and failures in words.

Experts type these addresses, and the server fetches them, so every connection, redirects
included, is checked where it is made: the resolver that hands urllib3 the addresses to
connect to refuses private ones, so the address checked is the address connected to (no
window for DNS rebinding between a check and the connection). `check_url` checks the same
thing up front for a clear early answer.

Failures come out as `RemoteError` with a sentence for the expert; the library's exception
is kept as `__cause__` only, and no message ever holds a password.

No Flask and no database here. Only plain sockets, so everything yields under eventlet.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import sys
from urllib.parse import urlsplit

import niquests
from caldav.lib import error as caldav_error
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


class RemoteError(Exception):
    """A remote call failed; `.message` says why, in words for the expert, `.status` is the
    HTTP status when the server answered. `.permanent`: the same call will fail again until
    someone changes something (a password, an address), so a periodic sync backs off
    instead of asking every few minutes."""

    def __init__(self, message: str, status: int | None = None, *, permanent: bool | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        if permanent is None:
            permanent = status is not None and 400 <= status < 500 and status not in (408, 429)
        self.permanent = permanent


class UnsafeAddress(RemoteError):
    """The address resolves to a loopback, private, link-local or otherwise non-public host."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


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


def session(allow_private: bool) -> niquests.Session:
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


def timeouts(remaining: float | None = None) -> tuple[float, float]:
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


def status_error(status: int, message: str | None = None) -> RemoteError:
    """The RemoteError for an HTTP status (permanent for a client error but 408 and 429)."""
    return RemoteError(message or status_message(status), status)


def status_message(status: int) -> str:
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


def in_words(exc: BaseException, host: str) -> RemoteError:
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
        return status_error(status)
    if has(caldav_error.RateLimitError):
        return status_error(429)
    if has(caldav_error.NotFoundError):
        return status_error(404)
    if has(http_errors.ConnectionError, ConnectionError):
        return RemoteError(f"Could not reach {host} (the connection was closed).")
    if has(etree.LxmlError, caldav_error.DAVError):
        return RemoteError(f"{host} did not answer as a CalDAV server.")
    if has(http_errors.RequestException, OSError):
        return RemoteError(f"Could not reach {host}.")
    return RemoteError(f"The calendar server at {host} could not be used.")


class Translated:
    """`with Translated(url):` turns any failure inside into a RemoteError, and ends the
    block after TOTAL_TIMEOUT however the server trickles its bytes (the per-read timeout
    alone lets a server that sends one byte a second hold a call forever).

    The deadline is eventlet's Timeout, raised in the green thread at its next wait: the
    server runs on eventlet (config.Config.ASYNC_MODE). In a process without it (tests,
    scripts) the per-read timeouts still apply."""

    def __init__(self, url: str):
        self.host = urlsplit(url).hostname or url
        self.deadline = None

    def __enter__(self):
        if green():
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
        translated = in_words(exc, self.host)
        if translated is exc:
            return False
        raise translated from exc


def green() -> bool:
    """True in a process whose sockets eventlet has made green (the server)."""
    patcher = sys.modules.get("eventlet.patcher")
    return patcher is not None and patcher.is_monkey_patched("socket")
