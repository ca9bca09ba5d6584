"""The periodic calendar sync: a background task in every server process (started by
wsgi.serve, never by `flask` commands or tests). Each pass syncs the connections that are
due; the sync lease (sync.claim) keeps two processes off one connection."""

from __future__ import annotations

import logging
import threading

from flask import Flask

from ..extensions import socketio
from ..models import utcnow
from ..realtime import announce_slots_changed
from .sync import due_connections, sync_connection, sync_every

log = logging.getLogger("expertbook.calendars")

# Syncs one process runs at once: each mostly waits on the network, but each also holds a
# database connection for its short write.
PARALLEL_SYNCS = 4


def start(app: Flask) -> None:
    """Run the sync loop in the background of this process."""
    socketio.start_background_task(_run, app)


def _run(app: Flask) -> None:
    slots = threading.BoundedSemaphore(PARALLEL_SYNCS)  # green under eventlet
    while True:
        with app.app_context():
            pause = min(15.0, max(1.0, sync_every().total_seconds() / 10))
            try:
                ids = due_connections(utcnow())
            except Exception:  # noqa: BLE001 - the database may be away; try again later
                log.exception("calendar sync: could not list due connections")
                ids = []
        for connection_id in ids:
            slots.acquire()
            socketio.start_background_task(_sync_one, app, connection_id, slots)
        socketio.sleep(pause)


def _sync_one(app: Flask, connection_id: int, slots: threading.BoundedSemaphore) -> None:
    try:
        with app.app_context():
            sync_and_announce(connection_id, due_only=True)
    except Exception:  # noqa: BLE001 - one connection's failure must not stop the loop
        log.exception("calendar sync of connection %s failed", connection_id)
    finally:
        slots.release()


def sync_and_announce(connection_id: int, *, due_only: bool):
    """One sync; the expert's open pages re-read their slots when busy times changed."""
    result = sync_connection(connection_id, now=utcnow(), due_only=due_only)
    if result is not None and result.changed:
        announce_slots_changed(result.connection.expert_id)
    return result
