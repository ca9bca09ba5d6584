"""ExpertBook: self-hosted booking pages for independent experts."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Response, abort, g, jsonify, render_template, request
from flask.logging import default_handler
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from config import CONFIGS, INSTANCE_DIR, Config, normalize_database_url

from . import static_urls
from .cookie_sessions import CookieSessions
from .extensions import csrf, db, limiter, login_manager, migrate, socketio

ROOT = Path(__file__).resolve().parent.parent


class DatabaseId(IntegerConverter):
    """`<int:...>` limited to what an INTEGER column holds."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(config_class: type[Config] | str | None = None, **overrides) -> Flask:
    """Build the app. `config_class` is a Config subclass or a name from config.CONFIGS;
    `overrides` set single keys on top (tests use them for the database URL)."""
    if config_class is None or isinstance(config_class, str):
        config_class = CONFIGS[config_class or "development"]
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(INSTANCE_DIR),
    )
    app.config.from_object(config_class)
    app.config.update(overrides)
    app.session_interface = CookieSessions()
    # An override names the database too: the same driver choice as the environment's.
    uri = normalize_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    if app.config.get("PRODUCTION"):
        config_class.check()
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    if app.config["PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    # Ids in URLs are database integers: a bigger number is simply not found (404), instead
    # of an overflow in the database driver.
    app.url_map.converters["int"] = DatabaseId
    static_urls.init_app(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_template_helpers(app)
    register_security_headers(app)
    register_nul_guard(app)
    return app


def header_names(response: Response) -> set[str]:
    """The names of the headers `response` has, lowercase. Asking werkzeug's Headers for a
    header that is missing (get, pop, `in`, setdefault) raises and catches an HTTPException
    inside: the hooks every answer runs read the names once."""
    return {name.lower() for name, _ in response.headers}


def note_retry_after(response: Response) -> Response:
    # (None when it has none: hooks that run again on an error's 500 forget the first's.)
    own = "retry-after" in header_names(response)
    g.own_retry_after = response.headers["Retry-After"] if own else None
    return response


def restore_retry_after(response: Response) -> Response:
    own = g.pop("own_retry_after", None)
    if own is not None:
        response.headers["Retry-After"] = own
    elif response.status_code != 429 and "retry-after" in header_names(response):
        del response.headers["Retry-After"]
    return response


def register_extensions(app: Flask) -> None:
    from . import database, pubsub, schedule_cache  # noqa: F401  (versions bump on flush)
    from .calendars import models as _calendar_models  # noqa: F401  (their tables)
    from .outbox import models as _outbox_models  # noqa: F401  (their tables)

    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = database.engine_options(app)
    db.init_app(app)
    database.configure_engine(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    login_manager.session_protection = app.config["SESSION_PROTECTION"]
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    if app.config["RATELIMIT_STORAGE_URI"].startswith(("redis://", "rediss://")):
        # A Redis that is away fails a check in half a second; the limits then fall back to
        # this process's memory (RATELIMIT_IN_MEMORY_FALLBACK_ENABLED) until it is back.
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", pubsub.client_options())
    # Flask-Limiter sets Retry-After on every answer of a limited route, to when its window
    # resets (up to a minute), over a 503's own few seconds. After-request hooks run
    # last-registered first: the app's own Retry-After is noted before the limiter's hook
    # and put back after it; the limiter's stays on its 429s only.
    app.after_request(restore_retry_after)
    limiter.init_app(app)
    app.after_request(note_retry_after)
    # Flask-Limiter warns when it falls back to memory on a logger of its own that has only a
    # NullHandler: the app's handler makes that one line reach the log.
    limiter_log = logging.getLogger("flask-limiter")
    if default_handler not in limiter_log.handlers:
        limiter_log.addHandler(default_handler)
    # Handlers must be declared before the first init_app: Flask-SocketIO re-registers its
    # list of handlers on every app's server, but only those declared while it had none.
    from . import realtime  # noqa: F401

    redis_url = app.config["REDIS_URL"]
    socketio.init_app(
        app,
        async_mode=app.config["ASYNC_MODE"],
        ping_interval=app.config["SOCKET_PING_INTERVAL"],
        ping_timeout=app.config["SOCKET_PING_TIMEOUT"],
        message_queue=redis_url,
        # Always named: Flask-SocketIO keeps the last app's manager for the next otherwise.
        client_manager=pubsub.RecoveringRedisManager(
            redis_url, channel=app.config["SOCKETIO_CHANNEL"], catch_up=realtime.catch_up
        )
        if redis_url
        else None,
        cors_allowed_origins=[app.config["BASE_URL"]] if app.config.get("PRODUCTION") else None,
        json=realtime.GuardedJSON,
    )
    realtime.guard_messages(socketio.server)


def register_blueprints(app: Flask) -> None:
    from .account.routes import bp as account_bp
    from .api import bp as api_bp
    from .auth.routes import bp as auth_bp
    from .bookings.feed import bp as feeds_bp
    from .bookings.routes import bp as bookings_bp
    from .cli import bp as cli_bp
    from .dashboard.routes import bp as dashboard_bp
    from .outbox.routes import bp as outbox_bp
    from .public.routes import bp as public_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(bookings_bp)
    app.register_blueprint(feeds_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(cli_bp)
    app.register_blueprint(outbox_bp)
    # Last: its `/<username>` catches what no other route claims.
    app.register_blueprint(public_bp)


def wants_json() -> bool:
    return request.path.startswith("/api/")


def register_errorhandlers(app: Flask) -> None:
    from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from .api.errors import error_response
    from .database import BookingBusy, deadline, discard_transaction, is_busy, is_unavailable

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        if wants_json():
            return error_response(400, "csrf_failed", error.description)
        return render_template("errors/error.html", code=400, message=error.description), 400

    def busy(message: str):
        """503 with Retry-After: a lock wait ran out, nothing was written; try again soon."""
        if wants_json():
            return error_response(503, "busy", message, headers={"Retry-After": "2"})
        page = render_template("errors/error.html", code=503, message=message)
        return page, 503, {"Retry-After": "2"}

    @app.errorhandler(BookingBusy)
    def booking_busy(error: BookingBusy):
        # Someone holds the expert's lock too long.
        return busy("Bookings for this expert are busy right now; please try again.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if wants_json():
            code = {
                400: "bad_request",
                401: "unauthorized",
                403: "forbidden",
                404: "not_found",
                405: "method_not_allowed",
                409: "conflict",
                413: "payload_too_large",
                415: "unsupported_media_type",
                429: "rate_limited",
            }.get(error.code, "error")
            response = error_response(error.code or 500, code, error.description)
        else:
            response = (
                render_template("errors/error.html", code=error.code, message=error.description),
                error.code,
            )
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        # Never a traceback to the client; the log keeps it for the maintainer.
        app.logger.exception("unhandled error")
        db.session.rollback()
        if wants_json():
            return error_response(500, "internal_error", "Something went wrong on our side.")
        message = "Something went wrong on our side."
        return render_template("errors/error.html", code=500, message=message), 500

    def unavailable(error: Exception):
        """503 with Retry-After: the database cannot be reached; nothing was written."""
        app.logger.warning("database unavailable: %s", str(error).partition("\n")[0])
        discard_transaction()
        message = "The site cannot reach its database right now; please try again shortly."
        headers = {"Retry-After": str(app.config["UNAVAILABLE_RETRY_AFTER"])}
        if wants_json():
            return error_response(503, "unavailable", message, headers=headers)
        # The page must not ask the database who is signed in.
        g._login_user = login_manager.anonymous_user()
        page = render_template("errors/error.html", code=503, message=message, unavailable=True)
        return page, 503, headers

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeout)
    def database_error(error: SQLAlchemyError):
        if is_unavailable(error):
            return unavailable(error)
        if not (isinstance(error, OperationalError) and is_busy(error)):
            return unexpected_error(error)
        # Outside a booking (on SQLite, say, a read transaction that another write overtook).
        app.logger.warning("database busy: %s", error.orig)
        db.session.rollback()
        return busy("The site is busy right now; please try again.")

    @app.get("/healthz")
    @limiter.exempt
    def healthz():
        """Liveness for monitors: one trivial query, answered within HEALTHZ_TIMEOUT."""
        from sqlalchemy import text

        try:
            with deadline(app.config["HEALTHZ_TIMEOUT"]):
                db.session.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any database failure means "not healthy"
            discard_transaction()
            return jsonify(status="unavailable"), 503
        return jsonify(status="ok")


def register_commands(app: Flask) -> None:
    # The CLI blueprint (cli_group=None) registers `flask users|tokens|demo`.
    logging.getLogger("eventlet.wsgi.server").setLevel(logging.WARNING)


def register_template_helpers(app: Flask) -> None:
    from . import templating

    templating.init_app(app)


def register_nul_guard(app: Flask) -> None:
    """No name, id or text of ours holds a NUL character, and PostgreSQL refuses one in any
    query. A path with one names nothing (404); a page's form with one is refused whole
    (400), before any view reads it. Query strings are the views' own: each parameter is
    parsed (a date, a zone) and a bad one falls back or is refused. JSON bodies:
    api.inputs.json_object."""

    @app.before_request
    def refuse_nul():
        if "\x00" in request.path:
            abort(404)
        # Not the API's: its views take only JSON (a form is refused there with 415), and
        # parsing one here would use up the body it reports about.
        if wants_json():
            return
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            fields = request.form.items(multi=True)
            if any("\x00" in key or "\x00" in value for key, value in fields):
                abort(400, description="Text may not contain NUL characters.")


def register_security_headers(app: Flask) -> None:
    csp = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )

    headers = [
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ]

    @app.after_request
    def security_headers(response):
        present = header_names(response)  # a view's own value stays
        response.headers.extend([(k, v) for k, v in headers if k.lower() not in present])
        return response
