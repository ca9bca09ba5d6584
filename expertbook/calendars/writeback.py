"""Bookings written back to the expert's receiving calendar: created, moved, removed.

After a booking change commits, a background task makes the calendar's copy match the
booking as it is then (so a late retry never undoes a newer change), retrying with growing
pauses while the server is down. The copy has the booking's UID, so sync.read_remote
recognises it and it never blocks its own time.

This is the simple retrying sender the calendar issue allows; retries live in the process
that made the change, so they end with it. The delivery outbox (issue 14) will carry them
across restarts.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import sqlalchemy as sa
from flask import Flask, current_app

from ..extensions import db, socketio
from ..ics import booking_uid, calendar_object
from ..models import Booking
from . import remote, secrets
from .models import CalendarConnection, ConnectedCalendar

log = logging.getLogger("expertbook.calendars")

FIRST_PAUSE = 2.0
LONGEST_PAUSE = 300.0
GIVE_UP_AFTER = 24 * 3600.0

# One push per booking at a time in this process (striped locks: bounded memory): a cancel
# right after a reschedule must not be overtaken by the reschedule's slower PUT.
_locks = [threading.Lock() for _ in range(64)]


def write_back(booking: Booking) -> None:
    """After commit: bring the expert's receiving calendar (if any) in line with `booking`."""
    if not _receiving_calendar_id(booking.expert_id):
        return
    app = current_app._get_current_object()
    if app.config.get("CALENDAR_WRITEBACK_SYNC"):
        push(booking.id)
    else:
        socketio.start_background_task(_push_with_retries, app, booking.id)


def _receiving_calendar_id(expert_id: int) -> int | None:
    return db.session.scalar(
        sa.select(ConnectedCalendar.id).where(
            ConnectedCalendar.expert_id == expert_id, ConnectedCalendar.writes.is_(True)
        )
    )


def _push_with_retries(app: Flask, booking_id: int) -> None:
    pause, given_up_at = FIRST_PAUSE, time.monotonic() + GIVE_UP_AFTER
    while True:
        try:
            with app.app_context():
                push(booking_id)
            return
        except (remote.RemoteError, secrets.SecretUnreadable) as error:
            message = getattr(error, "message", str(error))
            if time.monotonic() > given_up_at:
                log.error("calendar write-back of booking %s given up: %s", booking_id, message)
                return
            log.warning("calendar write-back of booking %s failed: %s", booking_id, message)
        except Exception:  # noqa: BLE001 - a background task: log it, never lose it silently
            log.exception("calendar write-back of booking %s failed", booking_id)
            return
        time.sleep(pause * random.uniform(0.8, 1.2))  # green under eventlet
        pause = min(pause * 2, LONGEST_PAUSE)


def push(booking_id: int) -> None:
    """PUT the booking's current state to the expert's receiving calendar, or DELETE it when
    cancelled. Raises remote.RemoteError (the caller retries)."""
    with _locks[booking_id % len(_locks)]:
        booking = db.session.get(Booking, booking_id, populate_existing=True)
        if booking is None:
            return
        row = db.session.execute(
            sa.select(ConnectedCalendar.url, CalendarConnection)
            .join(CalendarConnection, ConnectedCalendar.connection_id == CalendarConnection.id)
            .where(
                ConnectedCalendar.expert_id == booking.expert_id,
                ConnectedCalendar.writes.is_(True),
            )
        ).first()
        if row is None:
            return
        calendar_url, connection = row
        base_url = current_app.config["BASE_URL"]
        uid = booking_uid(booking.uid, base_url)
        ics = calendar_object(booking, base_url)
        db.session.commit()  # no transaction stays open across the network call
        password = secrets.decrypt(connection.secret)
        allow_private = bool(current_app.config["ALLOW_PRIVATE_HOSTS"])
        if booking.status == Booking.CONFIRMED:
            remote.put_event(
                calendar_url,
                connection.username,
                password,
                uid=uid,
                ics=ics,
                allow_private=allow_private,
            )
        else:
            remote.delete_event(
                calendar_url, connection.username, password, uid=uid, allow_private=allow_private
            )
