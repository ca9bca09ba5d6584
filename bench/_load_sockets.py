"""The open booking pages of bench/load.py: python-socketio clients holding their sockets.

Run by bench/load.py as its own process (so the crowd's CPU in the locust process does not
delay these clocks), as green threads under gevent:

    python bench/_load_sockets.py URL ROOMS_JSON OUT_JSON

ROOMS_JSON is a list of event type ids, one per socket: each socket connects through nginx
(websocket transport only) and joins that event type's room. Once every socket has joined
(or failed), one line `joined N failed M` goes to stdout. A line `report` on stdin then
writes OUT_JSON: how many sockets joined and are still connected, the rooms joined, the
first failures, the disconnects seen, and every `slot_taken` heard as [room, start,
time.monotonic() on arrival]. CLOCK_MONOTONIC is one
clock for every process of the machine, so load.py compares these times with its own.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.pool  # noqa: E402
import socketio  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

CONNECT_CONCURRENCY = 25
JOIN_TIMEOUT = 30.0
LAG_TICK = 0.01  # seconds: how often this process checks how late its own loop runs


class Page:
    """One socket in one event type's room, as a booking page holds it."""

    def __init__(self, url: str, room: int, heard: list, disconnects: list):
        self.url, self.room = url, room
        self.joined = gevent.event.Event()
        self.error = ""
        self.in_room = False
        # No reconnection: a dropped socket must show in "held at the end", not be hidden.
        self.client = socketio.Client(reconnection=False, ssl_verify=False)
        self.client.on("joined", lambda data: self.joined.set())
        self.client.on("error", self._error)
        self.client.on(
            "slot_taken", lambda data: heard.append((room, data["start"], time.monotonic()))
        )
        self.client.on("disconnect", lambda *reason: disconnects.append(room))

    def _error(self, data) -> None:
        self.error = str(data)
        self.joined.set()

    def open(self) -> bool:
        try:
            self.client.connect(self.url, transports=["websocket"], wait_timeout=JOIN_TIMEOUT)
            self.client.emit("join", {"event_type_id": self.room})
        except (socketio.exceptions.ConnectionError, OSError) as error:
            self.error = repr(error)
            return False
        return self.joined.wait(JOIN_TIMEOUT) and not self.error

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()


def watch_lag(lags: list[float]) -> None:
    """How late a 10 ms sleep wakes, in ms: the delay this process itself adds to every
    arrival time (a busy or starved client hears late)."""
    while True:
        before = time.monotonic()
        gevent.sleep(LAG_TICK)
        lags.append((time.monotonic() - before - LAG_TICK) * 1000)


def main() -> int:
    url, rooms_file, out_file = sys.argv[1:4]
    with open(rooms_file) as given:
        rooms = json.load(given)
    heard: list = []
    disconnects: list = []
    pages = [Page(url, room, heard, disconnects) for room in rooms]
    pool = gevent.pool.Pool(CONNECT_CONCURRENCY)
    for page, ok in zip(pages, pool.map(lambda page: page.open(), pages), strict=True):
        page.in_room = ok
    failures = [page.error or "no answer to join" for page in pages if not page.in_room]
    print(f"joined {len(pages) - len(failures)} failed {len(failures)}", flush=True)
    lags: list[float] = []
    watcher = gevent.spawn(watch_lag, lags)
    # A cooperative read of stdin: the sockets keep answering pings meanwhile.
    for line in FileObjectPosix(sys.stdin.fileno(), "r", close=False):
        if line.strip() == "report":
            break
    watcher.kill()
    # Held: connected, and in its room since the start.
    report = {
        "held": sum(page.client.connected and page.in_room for page in pages),
        "joined_rooms": [page.room for page in pages if page.in_room],
        "failures": failures[:3],
        "disconnects": len(disconnects),
        "heard": heard,
        "lags": lags,
    }
    with open(out_file, "w") as out:
        json.dump(report, out)
    print("reported", flush=True)
    gevent.joinall([gevent.spawn(page.close) for page in pages], timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
