"""Configuration classes, read from the environment (and `.env` via python-dotenv)."""

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"


def normalize_database_url(url: str) -> str:
    """Pick the PostgreSQL driver ourselves: plain `postgresql://` means psycopg 3 to
    SQLAlchemy 2.1, whose C build blocks the eventlet hub while it waits on a row lock.
    psycopg2 is green after `eventlet.monkey_patch()`, so we name it explicitly."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    # The one place that names the async framework: a move to gevent or threading is this line
    # (plus the monkey-patch line at the top of wsgi.py).
    ASYNC_MODE = os.environ.get("ASYNC_MODE", "eventlet")
    # Engine.IO's heartbeat (seconds): a connection lost without a close is seen gone within
    # interval + timeout, and only then does a bound hold's HOLD_DISCONNECT_GRACE_SECONDS
    # start (the defaults, 25 + 20, would keep a dead page's hold some 45 s longer).
    SOCKET_PING_INTERVAL = 10
    SOCKET_PING_TIMEOUT = 10

    SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_hex(32)
    # A random per-start key signs sessions well enough in development, but cannot decrypt
    # tomorrow what it encrypts today (calendars.secrets keeps a key file instead).
    SECRET_KEY_IS_RANDOM = not os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = normalize_database_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'expertbook.db'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # PostgreSQL away: a connection attempt gives up after this many seconds, and no single
    # statement runs longer than this many milliseconds (the booking transaction sets its
    # own); a request then answers 503 `unavailable` with Retry-After (expertbook/database.py).
    DATABASE_CONNECT_TIMEOUT = float(os.environ.get("DATABASE_CONNECT_TIMEOUT") or 3)
    DATABASE_STATEMENT_TIMEOUT_MS = int(os.environ.get("DATABASE_STATEMENT_TIMEOUT_MS") or 5000)
    # /healthz gives the database this long (seconds) in all before it answers 503.
    HEALTHZ_TIMEOUT = 1.5
    # Retry-After (seconds) on a 503 `unavailable`.
    UNAVAILABLE_RETRY_AFTER = 5
    REDIS_URL = os.environ.get("REDIS_URL") or None
    # Redis pub/sub ignores the database number: deployments sharing one Redis need their
    # own channel, or each hears the other's slot_taken events.
    SOCKETIO_CHANNEL = os.environ.get("SOCKETIO_CHANNEL") or "expertbook"
    # How many reverse proxies in front set X-Forwarded-For/-Proto (0: none, trust no header).
    # Rate limits key on the client address, so behind a proxy this must be set.
    PROXY_COUNT = int(os.environ.get("PROXY_COUNT") or 0)
    BASE_URL = (os.environ.get("BASE_URL") or "http://127.0.0.1:5000").rstrip("/")

    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    RATELIMIT_HEADERS_ENABLED = True
    # Redis away: limits are counted in each process's memory until it is back (checked
    # again after 1, 2, 4 ... 32 s), one warning in the log; any other failure of the limits'
    # store lets the request through instead of answering 500.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True

    MAIL_SERVER = os.environ.get("MAIL_SERVER") or None
    MAIL_PORT = int(os.environ.get("MAIL_PORT") or 25)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    MAIL_FROM = os.environ.get("MAIL_FROM") or "ExpertBook <no-reply@localhost>"

    # Connected calendars (expertbook/calendars): how often each is re-read, and whether its
    # URLs (and webhooks') may point at loopback or private addresses (tests, home servers).
    CALENDAR_SYNC_MINUTES = float(os.environ.get("CALENDAR_SYNC_MINUTES") or 5)
    ALLOW_PRIVATE_HOSTS = _bool("ALLOW_PRIVATE_HOSTS", False)
    # The key calendar passwords are encrypted with; falls back to SECRET_KEY (and, in
    # development without either, to a key kept in the instance folder).
    ENCRYPTION_KEY = os.environ.get("ENCRYPTION_KEY") or None
    # Every app process runs the calendar sync loop; tests start it themselves.
    CALENDAR_SYNC_IN_PROCESS = _bool("CALENDAR_SYNC_IN_PROCESS", True)

    # Delivery (expertbook/outbox): every app process runs the delivery loop unless this
    # is false (then `flask worker` delivers); failed deliveries are retried after pauses
    # growing from the first to the longest, with jitter, for the retry window.
    WORKER_IN_PROCESS = _bool("WORKER_IN_PROCESS", True)
    OUTBOX_RETRY_FIRST_SECONDS = float(os.environ.get("OUTBOX_RETRY_FIRST_SECONDS") or 10)
    OUTBOX_RETRY_LONGEST_SECONDS = float(os.environ.get("OUTBOX_RETRY_LONGEST_SECONDS") or 3600)
    OUTBOX_RETRY_WINDOW_HOURS = float(os.environ.get("OUTBOX_RETRY_WINDOW_HOURS") or 24)
    # A pass claims up to OUTBOX_BATCH rows for the lease and delivers OUTBOX_PARALLEL at
    # once; an idle worker looks again after OUTBOX_POLL_SECONDS at the latest (a commit, or
    # a NOTIFY on PostgreSQL, wakes it sooner).
    OUTBOX_BATCH = int(os.environ.get("OUTBOX_BATCH") or 32)
    OUTBOX_PARALLEL = int(os.environ.get("OUTBOX_PARALLEL") or 8)
    OUTBOX_LEASE_SECONDS = float(os.environ.get("OUTBOX_LEASE_SECONDS") or 300)
    OUTBOX_POLL_SECONDS = float(os.environ.get("OUTBOX_POLL_SECONDS") or 30)
    # While this process's worker is more than this many seconds behind for want of CPU
    # (its deliveries going out, its loop running late), new bookings wait a moment first,
    # up to 0.2 s (expertbook/outbox/pressure.py); 0 never holds one back.
    OUTBOX_BACKPRESSURE_SECONDS = float(os.environ.get("OUTBOX_BACKPRESSURE_SECONDS") or 0.5)
    # A webhook's POST (connecting, sending, the answer) is given up on after this many
    # seconds, however its receiver trickles the answer; the delivery is then retried.
    WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS") or 10)
    # Benchmarks only (bench/booking.py compares with and without): False writes no
    # messages at all, so nothing is mailed, reminded, posted or written back. Not read
    # from the environment, where a stray variable would silently stop all delivery: the
    # bench names its own configuration (EXPERTBOOK_ENV=bench-without-outbox).
    OUTBOX_ENABLED = True
    # Tests: the request that committed a change delivers its messages before it answers.
    DELIVER_INLINE = False

    # A request body larger than this is refused with 413 before any view reads it.
    MAX_CONTENT_LENGTH = 64 * 1024

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    SESSION_PROTECTION = "strong"
    WTF_CSRF_TIME_LIMIT = None  # a booking page left open all day must still submit

    # A live hold bound to a booking page's socket ends this many seconds after the socket
    # goes (expertbook/holds.py), unless the page comes back and binds it again.
    HOLD_DISCONNECT_GRACE_SECONDS = float(os.environ.get("HOLD_DISCONNECT_GRACE_SECONDS") or 30)

    # Booking transactions give up instead of queueing forever behind a stuck lock holder.
    BOOKING_LOCK_TIMEOUT_MS = 5000

    TESTING = False
    PRODUCTION = False


class DevelopmentConfig(Config):
    DEBUG = False


class ProductionConfig(Config):
    PRODUCTION = True
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True

    @classmethod
    def check(cls) -> None:
        if not os.environ.get("SECRET_KEY"):
            raise RuntimeError("SECRET_KEY must be set in production")


class TestingConfig(Config):
    TESTING = True
    # Unit and integration tests run without eventlet; the end-to-end tests start the real server.
    ASYNC_MODE = "threading"
    SECRET_KEY = "testing"
    SECRET_KEY_IS_RANDOM = False
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    RATELIMIT_ENABLED = False
    REDIS_URL = None
    MAIL_SERVER = None
    BASE_URL = "http://testserver"
    CALENDAR_SYNC_IN_PROCESS = False
    WORKER_IN_PROCESS = False
    # Mails and calendar write-back go out before the request answers, so a test sees them.
    DELIVER_INLINE = True


class WithoutOutboxConfig(DevelopmentConfig):
    """bench/booking.py's servers "without the outbox": a booking writes no messages."""

    OUTBOX_ENABLED = False


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestingConfig,
    "bench-without-outbox": WithoutOutboxConfig,
}
