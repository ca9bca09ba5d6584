"""Baselines for bench/booking.py: the least a Flask-SocketIO (eventlet) process can do to
fan an event out, and to book a slot, served the way `wsgi.py` serves ExpertBook.

    HOST=127.0.0.1 PORT=5101 REDIS_URL=redis://127.0.0.1:6379/14 \\
        DATABASE_URL=postgresql://postgres@127.0.0.1/db python bench/bare_server.py

Socket.IO `join` {"event_type_id": N} enters room "event-type:N" and answers `joined`.
`POST /emit` {"event_type_id": N, "start", "end"} emits `slot_taken` with that body to the
room (through the Redis message queue when REDIS_URL is set) and answers 200.
`POST /book/<event_type_id>` {"start", "name", "email"} books in ExpertBook's database with
hand-written SQL on a raw psycopg2 connection (green, as in ExpertBook): the expert's row
lock, an overlap check, the insert, commit; no ORM, no slot engine (hours, grid, notice,
buffers), no idempotency, no Socket.IO event. 201, or 409 when the time overlaps.
`GET /ping` and `GET /healthz` answer 200 and touch nothing. `SOCKETIO_CHANNEL` names the
Redis channel (default: the bench's own, so a running ExpertBook on the same Redis hears
nothing of it).
"""

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402
import secrets  # noqa: E402
import socket  # noqa: E402
from datetime import datetime  # noqa: E402

import psycopg2  # noqa: E402
from eventlet import wsgi as eventlet_wsgi  # noqa: E402
from eventlet.queue import LightQueue  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from flask_socketio import SocketIO, emit, join_room  # noqa: E402

app = Flask(__name__)
socketio = SocketIO(
    app,
    async_mode="eventlet",
    message_queue=os.environ.get("REDIS_URL") or None,
    channel=os.environ.get("SOCKETIO_CHANNEL", "expertbook-bench-bare"),
)
POOL_SIZE = 20
_pool: LightQueue | None = None


def room_of(event_type_id) -> str:
    return f"event-type:{int(event_type_id)}"


@socketio.on("join")
def on_join(payload):
    join_room(room_of(payload["event_type_id"]))
    emit("joined", {"event_type_id": payload["event_type_id"]})


@app.post("/emit")
def emit_slot_taken():
    data = request.get_json()
    socketio.emit("slot_taken", data, to=room_of(data["event_type_id"]))
    return jsonify(status="ok")


@app.get("/ping")
@app.get("/healthz")
def ping():
    return jsonify(status="ok")


def connections() -> LightQueue:
    global _pool
    if _pool is None:
        dsn = os.environ["DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://")
        _pool = LightQueue()
        for _ in range(POOL_SIZE):
            _pool.put(psycopg2.connect(dsn))
    return _pool


LOCK = """UPDATE "user" SET schedule_version = "user".schedule_version + 1
FROM event_type WHERE event_type.id = %s AND event_type.active AND "user".id = event_type.expert_id
RETURNING "user".id, event_type.duration_minutes"""
# The overlap in the terms of the exclusion constraint's GiST index (expert, time range), as
# ExpertBook's read says it (slot_queries._overlaps): without them, on a table the planner
# knows nothing of, the index serves the expert alone and every booking of theirs is read.
OVERLAP = """SELECT 1 FROM booking WHERE expert_id = %(expert)s AND status = 'confirmed'
AND tstzrange(start_at, end_at, '[)')
 && tstzrange(%(start)s, %(start)s + make_interval(mins => %(minutes)s), '[)') LIMIT 1"""
INSERT = """INSERT INTO booking (uid, expert_id, event_type_id, name, email, notes, start_at,
end_at, status, video_url, cancel_reason, sequence, manage_token_hash, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, '', %s, %s + make_interval(mins => %s), 'confirmed', '', '', 0,
%s, now(), now()) RETURNING id"""


@app.post("/book/<int:event_type_id>")
def book(event_type_id: int):
    data = request.get_json()
    start = datetime.fromisoformat(data["start"])
    pool = connections()
    conn = pool.get()
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = 5000; SET LOCAL statement_timeout = 10000")
            cur.execute(LOCK, (event_type_id,))
            row = cur.fetchone()
            if row is None:
                conn.rollback()
                return jsonify(error="not_found"), 404
            expert_id, minutes = row
            cur.execute(OVERLAP, {"expert": expert_id, "start": start, "minutes": minutes})
            if cur.fetchone() is not None:
                conn.rollback()
                return jsonify(error="slot_unavailable"), 409
            uid = secrets.token_hex(12)
            cur.execute(
                INSERT,
                (uid, expert_id, event_type_id, data["name"], data["email"], start, start,
                 minutes, secrets.token_hex(32)),
            )  # fmt: skip
            booking_id = cur.fetchone()[0]
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        pool.put(conn)
    return jsonify(id=booking_id, uid=uid, start=data["start"]), 201


def main() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5101"))
    listener = eventlet.listen((host, port), backlog=2048)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as wsgi.py does
    print(f"bare server on http://{host}:{port}/", flush=True)
    eventlet_wsgi.server(listener, app, log_output=False, max_size=4096)


if __name__ == "__main__":
    main()
