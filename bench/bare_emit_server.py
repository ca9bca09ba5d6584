"""Baseline for bench/booking.py: the least a Flask-SocketIO (eventlet) process can do to fan
an event out, served the way `wsgi.py` serves ExpertBook.

    HOST=127.0.0.1 PORT=5101 REDIS_URL=redis://127.0.0.1:6379/14 python bench/bare_emit_server.py

Socket.IO `join` {"event_type_id": N} enters room "event-type:N" and answers `joined`.
`POST /emit` {"event_type_id": N, "start", "end"} emits `slot_taken` with that body to the
room (through the Redis message queue when REDIS_URL is set) and answers 200.
`GET /healthz` answers 200. `SOCKETIO_CHANNEL` names the Redis channel (default: the
bench's own, so a running ExpertBook on the same Redis hears nothing of it).
"""

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402
import socket  # noqa: E402

from eventlet import wsgi as eventlet_wsgi  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from flask_socketio import SocketIO, emit, join_room  # noqa: E402

app = Flask(__name__)
socketio = SocketIO(
    app,
    async_mode="eventlet",
    message_queue=os.environ.get("REDIS_URL") or None,
    channel=os.environ.get("SOCKETIO_CHANNEL", "expertbook-bench-bare"),
)


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


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")


def main() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5101"))
    listener = eventlet.listen((host, port), backlog=2048)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as wsgi.py does
    print(f"bare emit server on http://{host}:{port}/", flush=True)
    eventlet_wsgi.server(listener, app, log_output=False, max_size=4096)


if __name__ == "__main__":
    main()
