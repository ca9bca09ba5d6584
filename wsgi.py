"""Serve ExpertBook: `python wsgi.py` runs the app with Socket.IO on eventlet.

Importing this module builds the app (for `flask --app wsgi`) but starts no server.
"""

import sys
import warnings

# Eventlet announces its own deprecation on import (see config.Config.ASYNC_MODE); only that.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

# First, before anything else is imported: sockets, threads, locks and psycopg2 must be the
# green versions everywhere, or one blocked call freezes the whole process. The async mode
# itself is named once, in config.Config.ASYNC_MODE. The `flask` CLI has imported Flask
# before it imports us, too late to patch cleanly; it serves nothing, so it runs unpatched.
if "flask.cli" not in sys.modules:
    import eventlet

    eventlet.monkey_patch()

import gc  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402

from dotenv import load_dotenv  # noqa: E402

load_dotenv()

from expertbook import create_app  # noqa: E402
from expertbook.access_log import RedactedLog  # noqa: E402
from expertbook.extensions import socketio  # noqa: E402
from expertbook.logs import log_to_stderr  # noqa: E402

app = create_app(os.environ.get("EXPERTBOOK_ENV") or "development")


def warm_up() -> None:
    """Pay the first request's costs before the first user does (a fresh process's first
    booking cost ~150 ms more than later ones): the booking path's late imports and
    compiled statements, a pooled database connection and the publisher's Redis
    connection. A database or Redis that is away is not waited for here."""
    from contextlib import suppress

    from sqlalchemy import text

    from expertbook import booking
    from expertbook.database import deadline
    from expertbook.extensions import db

    with app.app_context():
        booking.warm_up()
        with suppress(Exception), deadline(2):
            db.session.execute(text("SELECT 1"))
        db.session.remove()
    manager = socketio.server.manager
    if hasattr(manager, "_publisher"):  # the Redis message queue
        with suppress(Exception):
            manager._publisher.warm_up()


GC_YOUNG = 5000


def serve() -> None:
    """Listen on HOST:PORT (default 127.0.0.1:5000) until interrupted."""
    log_to_stderr()
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    access_log = os.environ.get("ACCESS_LOG", "true").lower() not in {"0", "false", "no"}
    warm_up()
    # What start-up made (modules, the app, compiled statements and templates) lives as long
    # as the process: out of the collector's reach, a full collection walks only what came
    # since. Without it, each full collection walked the whole heap, 100-440 ms with every
    # green thread stopped, and set the p99 of a booking's slot_taken reaching its sockets
    # (281-352 ms against 80-100 ms frozen, bench/booking.py's fan-out, same run).
    gc.collect()
    gc.freeze()
    # A collection every GC_YOUNG new objects, not CPython's 700. Under eventlet a request's
    # objects live across many small collections and are promoted, so the full collections
    # they bring on came every few seconds of load, each 10-15 ms with every green thread
    # stopped (with 250 sockets a process): one landing mid-fan-out left one process's
    # sockets that much behind the other's. Most objects now die before any collection
    # sees them: young collections take 1-4 ms, a middle one 8-9 ms about once a process
    # (after the sockets joined), and no full one came in the fan-out. Spread p99
    # (bench/booking.py 3./4., four fresh pairs each, same run): 8.5-11.1 ms against
    # 7.3-8.7 ms bare (1.16-1.28x); 11.5-21.6 ms at 700 (1.5-2.9x).
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    print(f"ExpertBook on http://{host}:{port}/ (async mode: {app.config['ASYNC_MODE']})")
    if app.config["CALENDAR_SYNC_IN_PROCESS"]:
        from expertbook.calendars import loop

        loop.start(app)
    if app.config["WORKER_IN_PROCESS"]:
        from expertbook.outbox import worker

        worker.start(app)
    # Expired holds (and overdue requests) end in every web process, never in `flask worker`.
    from expertbook import sweeper

    sweeper.start(app)
    if app.config["ASYNC_MODE"] != "eventlet":
        socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True)
        return
    import eventlet
    from eventlet import wsgi as eventlet_wsgi

    listener = eventlet.listen((host, port), backlog=2048)
    # Neither eventlet nor socketio.run sets TCP_NODELAY; without it a 20-60 KB response on a
    # kept-alive connection waits ~40 ms for the client's delayed ACK. Accepted sockets
    # inherit the option from the listener.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Without log_output eventlet logs nothing, not even the traceback of an error that
    # escaped the app: keep it on, with an empty line format when the access log is off
    # (RedactedLog drops those). debug=False: such an error's 500 carries no traceback.
    eventlet_wsgi.server(
        listener,
        app,
        log=RedactedLog(sys.stderr),
        log_output=True,
        log_format=eventlet_wsgi.DEFAULT_LOG_FORMAT if access_log else "",
        debug=False,
        max_size=4096,
    )


if __name__ == "__main__":
    serve()
