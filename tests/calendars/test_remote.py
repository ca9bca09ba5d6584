"""expertbook.calendars.remote against a real Radicale and a real HTTP server (see conftest).

Both run on 127.0.0.1, which the address guard refuses, so most calls pass allow_private=True;
the SSRF tests leave it False and prove nothing is sent.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from expertbook.calendars import net, remote
from expertbook.calendars.remote import RemoteCalendar, RemoteError, UnsafeAddress
from tests.calendar_servers import free_port, serving

ROOT = Path(__file__).resolve().parents[2]
MARCH = {"start": datetime(2026, 3, 1, tzinfo=UTC), "end": datetime(2026, 4, 1, tzinfo=UTC)}
FEED = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nEND:VCALENDAR\r\n"


def vcalendar(*components: str) -> str:
    body = "".join(textwrap.dedent(c).strip() + "\n" for c in components)
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//test//EN\n{body}END:VCALENDAR\n"


def vevent(uid: str, start: str, end: str, *extra: str) -> str:
    lines = [f"UID:{uid}", "DTSTAMP:20260101T000000Z", f"DTSTART:{start}", f"DTEND:{end}"]
    return "\n".join(["BEGIN:VEVENT", *lines, *extra, "END:VEVENT"])


def uids(events: list[bytes]) -> set[str]:
    found = set()
    for data in events:
        for line in data.decode().splitlines():
            if line.startswith("UID:"):
                found.add(line[4:].strip())
    return found


def fake_dns(monkeypatch, names: dict[str, list[str] | object]) -> list[str]:
    """Make `socket.getaddrinfo` answer `names` (a list of addresses, or a callable giving
    one per lookup); other names resolve as usual. Returns the log of looked-up names."""
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        host = host.decode() if isinstance(host, bytes) else host
        if host not in names:
            return real(host, port, *args, **kwargs)
        looked_up.append(host)
        answer = names[host]
        addresses = answer() if callable(answer) else answer
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, int(port or 0), 0, 0) if ":" in a else (a, int(port or 0)),
            )
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


# --- Addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("not an address", False),
    ],
)
def test_is_public_address(address, public):
    assert net.is_public_address(address) is public


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/feed.ics",
        "http://localhost/feed.ics",
        "http://[::1]/feed.ics",
        "http://10.0.0.5/feed.ics",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:8080/",
        "http://[::ffff:127.0.0.1]/",
        "https://192.168.0.1/",
        "webcal://127.0.0.1/feed.ics",
    ],
)
def test_check_url_refuses_private_addresses(url):
    with pytest.raises(UnsafeAddress) as caught:
        remote.check_url(url, allow_private=False)
    assert "private network" in caught.value.message
    assert remote.check_url(url, allow_private=True)  # the same address is fine when allowed


def test_check_url_refuses_names_with_any_private_address(monkeypatch):
    fake_dns(
        monkeypatch,
        {
            "intranet.example": ["10.0.0.7"],
            "mixed.example": ["93.184.216.34", "192.168.1.20"],
            "public.example": ["93.184.216.34", "2606:4700:4700::1111"],
        },
    )
    for host in ("intranet.example", "mixed.example"):
        with pytest.raises(UnsafeAddress):
            remote.check_url(f"https://{host}/cal.ics", allow_private=False)
    assert (
        remote.check_url(" https://public.example/cal.ics\n", allow_private=False)
        == "https://public.example/cal.ics"
    )


@pytest.mark.parametrize(
    ("url", "result"),
    [
        ("webcal://127.0.0.1/a.ics", "https://127.0.0.1/a.ics"),
        ("WEBCAL://127.0.0.1/a.ics", "https://127.0.0.1/a.ics"),
        ("webcals://127.0.0.1/a.ics", "https://127.0.0.1/a.ics"),
        ("  http://127.0.0.1:8000/a.ics  ", "http://127.0.0.1:8000/a.ics"),
    ],
)
def test_check_url_normalizes(url, result):
    assert remote.check_url(url, allow_private=True) == result


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://127.0.0.1/a.ics", "must start with https://"),
        ("file:///etc/passwd", "must start with https://"),
        ("127.0.0.1/a.ics", "must start with https://"),
        ("http:///a.ics", "no host name"),
        ("https://alice:secret@127.0.0.1/dav/", "own fields"),
        ("http://127.0.0.1:99999/", "not valid"),
        ("http://127.0.0.1/a b.ics", "spaces"),
        ("http://127.0.0.1/" + "a" * 2048, "too long"),
        ("https://no-such-host.invalid/a.ics", "name was not found"),
    ],
)
def test_check_url_refuses_malformed_addresses(url, words):
    with pytest.raises(RemoteError) as caught:
        remote.check_url(url, allow_private=True)
    assert words in caught.value.message
    assert "secret" not in caught.value.message


# --- SSRF through the whole stack -------------------------------------------------------------


def test_fetch_feed_refuses_loopback_and_sends_nothing(http_server):
    url = http_server.route("/feed.ics", FEED)
    with pytest.raises(UnsafeAddress):
        remote.fetch_feed(url, allow_private=False)
    assert http_server["/feed.ics"].hits == 0


def test_a_redirect_to_a_private_address_is_refused(http_server, monkeypatch):
    """The first hop is "public" (127.0.0.2, declared so for this test only); it redirects to
    127.0.0.1, which the guard must refuse on its own, before anything reaches it."""
    target = http_server.route("/feed.ics", FEED)
    real = net.is_public_address
    monkeypatch.setattr(net, "is_public_address", lambda a: a == "127.0.0.2" or real(a))
    with serving("127.0.0.2") as outside:
        start = outside.route("/cal.ics", redirect=target)
        with pytest.raises(UnsafeAddress) as caught:
            remote.fetch_feed(start, allow_private=False)
        assert outside["/cal.ics"].hits == 1  # the first hop was really fetched
    assert "127.0.0.1" in caught.value.message
    assert http_server["/feed.ics"].hits == 0


def test_a_caldav_redirect_to_a_private_address_is_refused(http_server, monkeypatch):
    """caldav's requests follow redirects inside niquests; the resolver guard sees each hop."""
    http_server.route("/dav/", "<html></html>", content_type="text/html")
    real = net.is_public_address
    monkeypatch.setattr(net, "is_public_address", lambda a: a == "127.0.0.2" or real(a))
    with serving("127.0.0.2") as outside:
        start = outside.route("/", redirect=http_server.url + "/dav/", status=301)
        with pytest.raises(UnsafeAddress):
            remote.discover(start, "alice", "pw", allow_private=False)
        assert outside["/"].hits == 1
    assert http_server["/dav/"].hits == 0


def test_the_guard_checks_the_address_it_connects_to(http_server, monkeypatch):
    """DNS rebinding: the name looks public when checked up front, then resolves to loopback
    for the connection. The guard sits in the resolver urllib3 connects with, so it refuses."""
    url = http_server.route("/feed.ics", FEED)
    answers = iter([["93.184.216.34"]])
    looked_up = fake_dns(monkeypatch, {"rebind.example": lambda: next(answers, ["127.0.0.1"])})
    port = url.split(":")[2].split("/")[0]
    with pytest.raises(UnsafeAddress):
        remote.fetch_feed(f"http://rebind.example:{port}/feed.ics", allow_private=False)
    assert len(looked_up) >= 2  # checked up front, then again for the connection
    assert http_server["/feed.ics"].hits == 0


@pytest.mark.parametrize("call", ["discover", "calendar_events", "put_event", "delete_event"])
def test_caldav_calls_go_through_the_guard(call, http_server, monkeypatch):
    http_server.route("/dav/", "<html></html>", content_type="text/html")
    answers = iter([["93.184.216.34"]])
    fake_dns(monkeypatch, {"rebind.example": lambda: next(answers, ["127.0.0.1"])})
    port = http_server.url.rsplit(":", 1)[1]
    url = f"http://rebind.example:{port}/dav/"
    kwargs = {"allow_private": False}
    if call == "calendar_events":
        kwargs.update(MARCH)
    if call in ("put_event", "delete_event"):
        kwargs["uid"] = "x"
    if call == "put_event":
        kwargs["ics"] = FEED
    with pytest.raises(UnsafeAddress):
        getattr(remote, call)(url, "alice", "pw", **kwargs)
    assert http_server["/dav/"].hits == 0


# --- Feeds --------------------------------------------------------------------------------


def test_fetch_feed_returns_the_body(http_server):
    url = http_server.route("/feed.ics", FEED)
    assert remote.fetch_feed(url, allow_private=True) == FEED


def test_fetch_feed_returns_html_as_it_is(http_server):
    url = http_server.route("/feed.ics", "<html>Sign in</html>", content_type="text/html")
    assert remote.fetch_feed(url, allow_private=True) == b"<html>Sign in</html>"


def test_fetch_feed_reads_a_body_that_ends_with_the_connection(http_server):
    url = http_server.route("/feed.ics", FEED, length=False)
    assert remote.fetch_feed(url, allow_private=True) == FEED


def test_fetch_feed_follows_redirects(http_server):
    http_server.route("/feed.ics", FEED)
    http_server.route("/c", redirect="/feed.ics")  # relative
    http_server.route("/b", redirect=http_server.url + "/c", status=301)
    start = http_server.route("/a", redirect=http_server.url + "/b", status=307)
    assert remote.fetch_feed(start, allow_private=True) == FEED
    assert [http_server[p].hits for p in ("/a", "/b", "/c", "/feed.ics")] == [1, 1, 1, 1]


@pytest.mark.parametrize(("hops", "ok"), [(5, True), (6, False)])
def test_fetch_feed_follows_at_most_five_redirects(http_server, hops, ok):
    http_server.route(f"/r{hops}", FEED)
    for i in range(hops):
        http_server.route(f"/r{i}", redirect=f"/r{i + 1}")
    if ok:
        assert remote.fetch_feed(http_server.url + "/r0", allow_private=True) == FEED
        return
    with pytest.raises(RemoteError) as caught:
        remote.fetch_feed(http_server.url + "/r0", allow_private=True)
    assert caught.value.message == "The address redirected more than 5 times."
    assert http_server[f"/r{hops}"].hits == 0


def test_fetch_feed_refuses_a_redirect_to_another_scheme(http_server):
    url = http_server.route("/feed.ics", redirect="file:///etc/passwd")
    with pytest.raises(RemoteError) as caught:
        remote.fetch_feed(url, allow_private=True)
    assert "must start with https://" in caught.value.message


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (401, "needs a password or is not shared (401)"),
        (403, "needs a password or is not shared (403)"),
        (404, "Nothing was found at that address (404)."),
        (410, "Nothing was found at that address (410)."),
        (500, "The server had an error (500)."),
        (503, "The server had an error (503)."),
        (418, "The server refused the request (418)."),
    ],
)
def test_fetch_feed_error_statuses(http_server, status, words):
    url = http_server.route("/feed.ics", "nope", status=status, content_type="text/plain")
    with pytest.raises(RemoteError) as caught:
        remote.fetch_feed(url, allow_private=True)
    assert words in caught.value.message


def test_fetch_feed_stops_reading_past_the_limit(http_server):
    # 64 MB without a Content-Length: the limit can only be found by reading.
    url = http_server.route("/big.ics", b"x" * 65536, repeat=1024, length=False)
    with pytest.raises(RemoteError) as caught:
        remote.fetch_feed(url, allow_private=True, max_bytes=1024 * 1024)
    assert caught.value.message == "The feed is larger than 1 MB."
    assert http_server["/big.ics"].done.wait(10)
    assert http_server["/big.ics"].sent < 32 * 1024 * 1024  # the server could not send it all


def test_fetch_feed_refuses_a_declared_size_past_the_limit(http_server):
    url = http_server.route("/big.ics", b"x" * 65536, repeat=1024)
    with pytest.raises(RemoteError) as caught:
        remote.fetch_feed(url, allow_private=True)
    assert caught.value.message == "The feed is larger than 10 MB."
    assert http_server["/big.ics"].done.wait(10)
    assert http_server["/big.ics"].sent < 32 * 1024 * 1024


def test_fetch_feed_gives_up_on_slow_headers(http_server, monkeypatch):
    monkeypatch.setattr(net, "READ_TIMEOUT", 0.5)
    url = http_server.route("/feed.ics", FEED, delay=5)
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        remote.fetch_feed(url, allow_private=True)
    assert caught.value.message == "The server did not answer within 0.5 seconds."
    assert time.monotonic() - started < 3


def test_fetch_feed_gives_up_on_a_drip_past_the_deadline(http_server, monkeypatch):
    """Each byte comes well within the read timeout, but the whole would take 10 s."""
    monkeypatch.setattr(net, "TOTAL_TIMEOUT", 1)
    url = http_server.route("/feed.ics", b"x" * 100, drip=0.1)
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        remote.fetch_feed(url, allow_private=True)
    assert caught.value.message == "The feed did not arrive within 1 seconds."
    assert time.monotonic() - started < 3
    assert http_server["/feed.ics"].sent < 50


def test_fetch_feed_when_the_server_hangs_up(http_server):
    url = http_server.route("/feed.ics", close=True)
    with pytest.raises(RemoteError) as caught:
        remote.fetch_feed(url, allow_private=True)
    assert caught.value.message == "Could not reach 127.0.0.1 (the connection was closed)."


def test_fetch_feed_when_nothing_listens():
    with pytest.raises(RemoteError) as caught:
        remote.fetch_feed(f"http://127.0.0.1:{free_port()}/feed.ics", allow_private=True)
    assert caught.value.message == "Could not reach 127.0.0.1 (connection refused)."
    assert caught.value.__cause__ is not None  # the library's error, for the log


def self_signed_tls(tmp_path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_fetch_feed_refuses_an_unverifiable_certificate(tmp_path):
    with serving(tls=self_signed_tls(tmp_path)) as server:
        url = server.route("/feed.ics", FEED)
        with pytest.raises(RemoteError) as caught:
            remote.fetch_feed(url, allow_private=True)
        assert server["/feed.ics"].hits == 0
    assert caught.value.message == "The server's TLS certificate could not be verified."


def test_no_threads_are_started(http_server, radicale):
    """Only plain sockets: under eventlet a thread of the library's own would be a real one."""
    url = http_server.route("/feed.ics", FEED)
    before = set(threading.enumerate())
    remote.fetch_feed(url, allow_private=True)
    remote.discover(radicale.url, radicale.username, radicale.password, allow_private=True)
    started = [
        t.name
        for t in set(threading.enumerate()) - before
        if "process_request_thread" not in t.name  # the test server's own handlers
    ]
    assert started == []


def test_a_slow_server_does_not_freeze_other_green_threads(http_server):
    """Under eventlet, a fetch waiting on a slow server yields: another green thread ticks."""
    url = http_server.route("/feed.ics", FEED, delay=1.0)
    script = textwrap.dedent(
        """
        import eventlet
        eventlet.monkey_patch()
        import sys, time
        from expertbook.calendars import remote

        ticks = []
        def tick():
            while True:
                ticks.append(time.monotonic())
                eventlet.sleep(0.02)

        eventlet.spawn(tick)
        eventlet.sleep(0)
        started = time.monotonic()
        body = remote.fetch_feed(sys.argv[1], allow_private=True)
        finished = time.monotonic()
        during = [t for t in ticks if started < t < finished]
        print(len(body), round(finished - started, 2), len(during))
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script, url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    size, elapsed, ticks = result.stdout.split()
    assert int(size) == len(FEED)
    assert float(elapsed) >= 0.9  # it did wait for the slow server
    assert int(ticks) >= 20  # ~50 expected at one tick per 20 ms; a blocked hub gives 0-1


def test_a_caldav_server_that_trickles_is_cut_off_at_the_deadline():
    """Per-read timeouts let a server sending a byte a second hold a call forever; under
    eventlet (the server) the whole CalDAV call ends at TOTAL_TIMEOUT."""
    script = textwrap.dedent(
        """
        import eventlet
        eventlet.monkey_patch()
        import socket, time
        from expertbook.calendars import net, remote

        net.TOTAL_TIMEOUT = 1
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)

        def trickle():
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 207 Multi-Status\\r\\nContent-Type: text/xml\\r\\n"
                         b"Content-Length: 1000\\r\\n\\r\\n")
            for _ in range(1000):
                conn.sendall(b" ")
                eventlet.sleep(0.2)

        eventlet.spawn(trickle)
        started = time.monotonic()
        url = "http://127.0.0.1:%d/" % listener.getsockname()[1]
        try:
            remote.discover(url, "u", "p", allow_private=True)
        except remote.RemoteError as error:
            print(round(time.monotonic() - started, 2), error.message)
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    elapsed, message = result.stdout.split(" ", 1)
    assert 0.9 <= float(elapsed) < 5
    assert "did not finish answering within 1 seconds" in message


# --- CalDAV: discovery ---------------------------------------------------------------------


@pytest.mark.parametrize("start", ["root", "principal"])
def test_discover_finds_the_event_calendars(radicale, start):
    work = radicale.make_calendar("Work")
    home = radicale.make_calendar("Home", components=("VEVENT", "VTODO"))
    radicale.make_calendar("Chores", components=("VTODO",))
    url = radicale.url if start == "root" else radicale.principal_url
    found = remote.discover(url, radicale.username, radicale.password, allow_private=True)
    assert sorted(found, key=lambda c: c.name) == [
        RemoteCalendar(url=home, name="Home"),
        RemoteCalendar(url=work, name="Work"),
    ]


def test_discover_from_a_calendar_url_gives_that_calendar(radicale):
    work = radicale.make_calendar("Work")
    radicale.make_calendar("Home")
    found = remote.discover(work, radicale.username, radicale.password, allow_private=True)
    assert found == [RemoteCalendar(url=work, name="Work")]


def test_discover_from_a_task_list_url_gives_nothing(radicale):
    chores = radicale.make_calendar("Chores", components=("VTODO",))
    assert remote.discover(chores, radicale.username, radicale.password, allow_private=True) == []


def test_discover_with_a_wrong_password(radicale):
    wrong = "not-the-password-x7"
    with pytest.raises(RemoteError) as caught:
        remote.discover(radicale.url, radicale.username, wrong, allow_private=True)
    assert caught.value.message == "The server refused the user name or password (401)."
    assert wrong not in str(caught.value)
    assert radicale.password not in str(caught.value)


def test_discover_on_a_web_page(http_server):
    url = http_server.route("/", "<html><body>Welcome</body></html>", content_type="text/html")
    with pytest.raises(RemoteError) as caught:
        remote.discover(url, "alice", "pw", allow_private=True)
    assert caught.value.message == "127.0.0.1 did not answer as a CalDAV server."


def test_discover_when_nothing_listens():
    with pytest.raises(RemoteError) as caught:
        remote.discover(f"http://127.0.0.1:{free_port()}/", "a", "b", allow_private=True)
    assert caught.value.message == "Could not reach 127.0.0.1 (connection refused)."


# --- CalDAV: events --------------------------------------------------------------------------


def test_calendar_events_in_a_range(radicale):
    url = radicale.make_calendar("Work")
    add = radicale.add_event
    add(url, vcalendar(vevent("inside", "20260310T100000Z", "20260310T110000Z")))
    add(url, vcalendar(vevent("before", "20260201T100000Z", "20260201T110000Z")))
    add(url, vcalendar(vevent("after", "20260401T000000Z", "20260401T010000Z")))  # end excluded
    add(url, vcalendar(vevent("overlaps-start", "20260228T230000Z", "20260301T003000Z")))
    # A weekly series that started in January: its master lies outside, occurrences inside.
    add(
        url,
        vcalendar(vevent("weekly", "20260105T090000Z", "20260105T093000Z", "RRULE:FREQ=WEEKLY")),
    )
    # A series over before March: nothing of it is inside.
    add(
        url,
        vcalendar(
            vevent("ended", "20260105T090000Z", "20260105T093000Z", "RRULE:FREQ=DAILY;COUNT=3")
        ),
    )
    # A series with one occurrence moved: master and exception come back together.
    add(
        url,
        vcalendar(
            vevent("moved", "20260302T120000Z", "20260302T130000Z", "RRULE:FREQ=DAILY;COUNT=5"),
            vevent(
                "moved",
                "20260303T150000Z",
                "20260303T160000Z",
                "RECURRENCE-ID:20260303T120000Z",
            ),
        ),
    )
    events = remote.calendar_events(
        url, radicale.username, radicale.password, allow_private=True, **MARCH
    )
    assert uids(events) == {"inside", "overlaps-start", "weekly", "moved"}
    assert len(events) == 4  # one object per UID
    by_uid = {next(iter(uids([e]))): e.decode() for e in events}
    assert "RRULE:FREQ=WEEKLY" in by_uid["weekly"]  # the master, not expanded
    assert "DTSTART:20260105T090000Z" in by_uid["weekly"]
    assert by_uid["moved"].count("BEGIN:VEVENT") == 2
    assert "RECURRENCE-ID:20260303T120000Z" in by_uid["moved"]


def test_calendar_events_need_aware_datetimes(radicale):
    with pytest.raises(ValueError):
        remote.calendar_events(
            radicale.url,
            radicale.username,
            radicale.password,
            start=datetime(2026, 3, 1),
            end=datetime(2026, 4, 1),
            allow_private=True,
        )


def test_calendar_events_of_a_missing_calendar(radicale):
    with pytest.raises(RemoteError) as caught:
        remote.calendar_events(
            radicale.principal_url + "no-such-calendar/",
            radicale.username,
            radicale.password,
            allow_private=True,
            **MARCH,
        )
    assert caught.value.message == "Nothing was found at that address (404)."


def many_events(count: int) -> str:
    first = datetime(2026, 3, 1, 8, tzinfo=UTC)
    events = []
    for i in range(count):
        start = first + timedelta(minutes=10 * i)
        end = start + timedelta(minutes=5)
        events.append(vevent(f"ev-{i}", f"{start:%Y%m%dT%H%M%SZ}", f"{end:%Y%m%dT%H%M%SZ}"))
    return vcalendar(*events)


def test_calendar_events_fetches_5000_events_fast(radicale):
    """Wall time is mostly Radicale's own (about 0.6 s idle, 1.5 s on a loaded 2-core box,
    5.6 s once at load 10), so it is printed, not checked (bench/slots.py measures it); our
    share is the CPU time of this process, which must stay small."""
    url = radicale.upload_calendar("Busy", many_events(5000))
    assert remote.discover(url, radicale.username, radicale.password, allow_private=True) == [
        RemoteCalendar(url=url, name="Busy")
    ]
    window = {"start": datetime(2026, 3, 1, tzinfo=UTC), "end": datetime(2026, 5, 1, tzinfo=UTC)}
    walls, cpus = [], []
    for _ in range(2):  # best of two: the machine is shared
        wall, cpu = time.perf_counter(), time.process_time()
        events = remote.calendar_events(
            url, radicale.username, radicale.password, allow_private=True, **window
        )
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        assert len(events) == 5000
    print(f"5,000 events: {min(walls):.2f} s wall, {min(cpus):.2f} s CPU here")
    assert min(cpus) < 0.5


# --- CalDAV: writing ------------------------------------------------------------------------


def booking(uid: str, summary: str) -> bytes:
    text = vcalendar(vevent(uid, "20260310T100000Z", "20260310T110000Z", f"SUMMARY:{summary}"))
    return text.replace("\n", "\r\n").encode()


@pytest.mark.parametrize("uid", ["booking-42", "b7f3@expertbook.example", "odd/uid with space"])
def test_put_then_delete(radicale, uid):
    url = radicale.make_calendar("Bookings")
    creds = (radicale.username, radicale.password)
    remote.put_event(url, *creds, uid=uid, ics=booking(uid, "First"), allow_private=True)
    remote.put_event(url, *creds, uid=uid, ics=booking(uid, "Moved"), allow_private=True)
    stored = radicale.object_urls(url)
    assert len(stored) == 1  # replaced, not added
    assert stored[0].startswith(url) and stored[0].endswith(".ics")
    events = remote.calendar_events(url, *creds, allow_private=True, **MARCH)
    assert uids(events) == {uid}
    assert "SUMMARY:Moved" in events[0].decode()

    remote.delete_event(url, *creds, uid=uid, allow_private=True)
    assert radicale.object_urls(url) == []
    remote.delete_event(url, *creds, uid=uid, allow_private=True)  # already gone: fine


def test_put_event_with_a_wrong_password(radicale):
    url = radicale.make_calendar("Bookings")
    with pytest.raises(RemoteError) as caught:
        remote.put_event(
            url, radicale.username, "wrong", uid="b1", ics=booking("b1", "x"), allow_private=True
        )
    assert caught.value.message == "The server refused the user name or password (401)."


def test_put_event_into_another_users_calendar(radicale, radicale_server):
    other = radicale_server.new_account()
    url = other.make_calendar("Private")
    with pytest.raises(RemoteError) as caught:
        remote.put_event(
            url,
            radicale.username,
            radicale.password,
            uid="b1",
            ics=booking("b1", "x"),
            allow_private=True,
        )
    assert caught.value.message == "The server does not allow this account to do that (403)."
    assert other.object_urls(url) == []
