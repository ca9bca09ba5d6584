"""Reading what a calendar server sent, in a child process unless it is small and simple.

Reading a REPORT answer (XML) and parsing and expanding the iCalendar data in it is seconds
of pure-Python CPU for a big calendar, and a few bytes of RRULE can cost seconds too. In the
server process that would stall every request (an eventlet hub cannot switch during it; an
OS thread would still hold the GIL most of the time). A child process runs it on its own,
the server only waits on a pipe (green under eventlet), and data built to eat memory hits
the child's limit, not the server; one that runs past TIMEOUT gets the child killed.

A large CalDAV answer is read by two processes where there are two cores: the child forks
a sibling that reads every other object (objects are independent of each other) and adds
up both parts' use of the limits (feeds.Tally). An answer past a size limit is not split,
and when either part fails, or the sum is past a limit, the child reads it again alone: the
same errors come back as from one process, in the same words (at the cost of reading a
failing calendar twice). The time and memory limits hold per process. The sibling lives
for that one job; an alarm ends it, and it is in the child's process group, which is
killed as one.

The child lives on between jobs (one at a time per server process), so a sync pays for
starting Python and importing the parsers once, not on every read; it imports only the
pure modules it needs, not the app. It is replaced after MAX_JOBS jobs, after a timeout,
or when it died.

Protocol: for each job, one JSON line (its kind, window and the answer's size), then the
raw answer; the reply is one JSON line, the `_read` result or {"error": message}.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from . import davxml
from .feeds import FeedError, Tally, busy_by_object

ROOT = Path(__file__).resolve().parents[2]
# Below this many bytes an answer is read in place (a few milliseconds to tens of them).
IN_PLACE_BYTES = 256 * 1024
TIMEOUT = 60.0  # seconds one job may take
MEMORY_LIMIT = 1 << 30  # bytes of address space for the child
MAX_JOBS = 500  # then a fresh child
# Objects from which a CalDAV answer is read in two processes (5,000: 0.75 s in one, about
# 0.5 s in two, on two idle cores); a fork costs a few milliseconds.
SPLIT_OBJECTS = 1000

FEED, QUERY, SYNC = "feed", "query", "sync"


@dataclass(frozen=True)
class ObjectRead:
    """One calendar object read: where it lives (a CalDAV href; a feed's UID), its ETag,
    its UID, and its busy times in the window as stored (CalendarObject.busy): "start/end"
    pairs in seconds since the epoch, space-separated."""

    href: str
    etag: str
    uid: str
    busy: str

    def pairs(self) -> list[tuple[int, int]]:
        return [tuple(map(int, pair.split("/"))) for pair in self.busy.split()]


@dataclass
class Read:
    """What an answer held: the objects with their data, read; the hrefs and ETags of those
    listed without data (an ETag listing, or a server that left the data out); for a
    sync-collection, the removed hrefs and the new token."""

    objects: list[ObjectRead] = field(default_factory=list)
    listed: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    token: str | None = None
    truncated: bool = False


def read(kind: str, answer: bytes, *, start: datetime, end: datetime, default_tz: str) -> Read:
    """Read an ICS feed (`FEED`) or a REPORT's multistatus answer (`QUERY` for a
    calendar-query or -multiget, `SYNC` for a sync-collection): the busy times of each
    object in [start, end), in a child process unless the answer is small and has no
    recurrence rules.

    Raises:
        FeedError: the answer cannot be read (the reason in words; also when the child ran
            out of time or memory).
    """
    job = {
        "kind": kind,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "default_tz": default_tz,
    }
    cheap = len(answer) < IN_PLACE_BYTES and b"RRULE" not in answer and b"RDATE" not in answer
    reply = _read(job, answer) if cheap else _in_child(job, answer)
    _raise_for(reply)
    return Read(
        objects=[ObjectRead(*fields) for fields in reply["objects"]],
        listed=reply.get("listed", {}),
        removed=reply.get("removed", []),
        token=reply.get("token"),
        truncated=reply.get("truncated", False),
    )


class _Child:
    """The long-lived child, started on first use, one job at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # green under eventlet
        self.process: subprocess.Popen | None = None
        self.jobs = 0

    def _fresh(self) -> bool:
        return self.process is not None and self.process.poll() is None and self.jobs < MAX_JOBS

    def warm(self) -> None:
        """Start the child if it is not there (or due for replacement), without waiting for
        it, unless a job holds it."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            if not self._fresh():
                self._replace()
        finally:
            self.lock.release()

    def run(self, job: dict, answer: bytes) -> dict:
        with self.lock:
            if not self._fresh():
                self._replace()
            self.jobs += 1
            try:
                header = json.dumps({**job, "size": len(answer)}).encode()
                self.process.stdin.write(header + b"\n" + answer)
                self.process.stdin.flush()
                line = self._reply_line(time.monotonic() + TIMEOUT)
            except TimeoutError:
                self.stop()
                return {"error": "The calendar took too long to read."}
            except OSError:  # the child died (memory limit): the next job gets a new one
                self.stop()
                line = b""
            try:
                return json.loads(line)
            except ValueError:
                self.stop()
                return _DIED

    def _reply_line(self, deadline: float) -> bytes:
        """The child's next line, read as it comes (select and os.read are green under
        eventlet); TimeoutError past the deadline, b"" when the child is gone."""
        stream = self.process.stdout.fileno()
        reply = bytearray()
        while not reply.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(stream, 1 << 16)
            if not chunk:
                return b""
            reply += chunk
        return bytes(reply)

    def _replace(self) -> None:
        self.stop()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(ROOT / "expertbook")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,  # its group holds the sibling it may fork: stopped as one
        )
        self.jobs = 0

    def stop(self) -> None:
        if self.process is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                stream.close()
            self.process = None


# The child imports the package's pure modules only: `expertbook/__init__` would load the
# whole app (Flask, SQLAlchemy, Alembic: seconds) for nothing.
_BOOT = """
import sys, types
package = types.ModuleType("expertbook")
package.__path__ = [sys.argv[1]]
sys.modules["expertbook"] = package
from expertbook.calendars.parse_worker import main
main()
"""

_child = _Child()
atexit.register(_child.stop)


def warm() -> None:
    """Have the child start now, so that starting Python and importing the parsers (about a
    quarter second) overlaps the network calls before the first read, not after them."""
    _child.warm()


def _in_child(job: dict, answer: bytes) -> dict:
    return _child.run(job, answer)


# The reply for a reader that died without a word (its memory limit, a timeout's kill).
_DIED = {"error": "The calendar is too large or too complex to read."}


def _raise_for(reply: dict) -> None:
    if "error" in reply:
        raise FeedError(reply["error"])


def _stored(busy) -> str:
    return " ".join(f"{int(i.start.timestamp())}/{int(i.end.timestamp())}" for i in busy)


def _read(job: dict, answer: bytes, *, split: bool = False) -> dict:
    """The reply to a job (the same in place and in the child; only the child, with
    `split`, may fork to read a large answer in two processes)."""
    window = dict(
        start=datetime.fromisoformat(job["start"]),
        end=datetime.fromisoformat(job["end"]),
        default_tz=job["default_tz"],
    )
    try:
        if job["kind"] == FEED:
            found = busy_by_object(answer, by="uid", **window)
            return {"objects": [[uid, "", uid, _stored(o.busy)] for uid, o in found.items()]}
        try:
            listing = davxml.read_listing(answer, sync=job["kind"] == SYNC)
        except ValueError:
            return {"error": "The server's answer was not CalDAV."}
        with_data = [o for o in listing.objects if o.data is not None]
        found = _busy_by_file([o.data.encode() for o in with_data], window, split)
        return {
            "objects": [
                [listed.href, listed.etag, *found.get(index, ("", ""))]
                for index, listed in enumerate(with_data)
            ],
            "listed": {o.href: o.etag for o in listing.objects if o.data is None},
            "removed": listing.removed,
            "token": listing.token,
            "truncated": listing.truncated,
        }
    except FeedError as error:
        return {"error": error.message}


def _busy_by_file(files: list[bytes], window: dict, split: bool) -> dict[int, tuple[str, str]]:
    """The UID and stored busy times (`_stored`) of each file with busy time in the window,
    by index; with `split`, in two processes when there are many files and two cores (see
    the module's docstring)."""
    if split and len(files) >= SPLIT_OBJECTS and _cores() > 1 and _within_size_limits(files):
        try:
            return _in_two(files, window)
        except FeedError:
            pass  # read again alone, for the error one process gives
    return _busy_of_files(files, window, Tally())


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _within_size_limits(files: list[bytes]) -> bool:
    """Whether the files are within the size limits, as far as a glance tells (one process
    refuses them at once, with the exact error)."""
    events = sum(file.count(b"BEGIN:VEVENT") for file in files)
    try:
        Tally(bytes=sum(map(len, files)), events=events).check()
    except FeedError:
        return False
    return True


def _in_two(files: list[bytes], window: dict) -> dict[int, tuple[str, str]]:
    """_busy_of_files, the odd files read by a forked sibling. Raises FeedError when either
    part fails or their tallies together are past a limit."""
    read_end, write_end = os.pipe()
    try:
        sibling = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return _busy_of_files(files, window, Tally())
    if sibling == 0:
        _sibling(files[1::2], window, read_end, write_end)
    os.close(write_end)
    tally = Tally()
    try:
        mine = _busy_of_files(files[0::2], window, tally)
    except BaseException:
        os.kill(sibling, signal.SIGKILL)
        raise
    finally:
        theirs = _sibling_reply(read_end, sibling)
    _raise_for(theirs)
    (tally + Tally(**theirs["tally"])).check()
    found = {2 * index: busy for index, busy in mine.items()}
    found.update((2 * int(index) + 1, tuple(busy)) for index, busy in theirs["found"].items())
    return found


def _sibling(files: list[bytes], window: dict, read_end: int, write_end: int) -> NoReturn:
    """The forked sibling: read `files`, write the reply to `write_end`, and end, whatever
    happens (never back into the child's loop)."""
    try:
        os.close(read_end)
        # The child's pipes to the server are not the sibling's: a child that dies is seen
        # at once, not when its sibling is done.
        quiet = os.open(os.devnull, os.O_RDWR)
        os.dup2(quiet, 0)
        os.dup2(quiet, 1)
        signal.alarm(int(TIMEOUT) + 1)
        tally = Tally()
        try:
            reply = {"found": _busy_of_files(files, window, tally), "tally": vars(tally)}
        except FeedError as error:
            reply = {"error": error.message}
        with os.fdopen(write_end, "w") as out:
            json.dump(reply, out)
    finally:
        os._exit(0)  # an answer cut short is read as a death (_sibling_reply)


def _sibling_reply(read_end: int, sibling: int) -> dict:
    """The sibling's reply, once it has ended; _DIED when it died without one."""
    try:
        with os.fdopen(read_end) as answer:
            text = answer.read()
    finally:
        os.waitpid(sibling, 0)
    try:
        return json.loads(text)
    except ValueError:
        return _DIED


def _busy_of_files(files: list[bytes], window: dict, tally: Tally) -> dict[int, tuple[str, str]]:
    """The UID and stored busy times of each file with busy time in the window, by index;
    what the read used of the limits is added to `tally`."""
    found = busy_by_object(files, by="file", tally=tally, **window)
    return {index: (busy.uid, _stored(busy.busy)) for index, busy in found.items()}


def main() -> None:
    """The child: read jobs from stdin and write each reply to stdout, until stdin ends."""
    import resource

    from icalendar.timezone import tzp

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    stream = sys.stdin.buffer
    while header := stream.readline():
        job = json.loads(header)
        answer = stream.read(job["size"])
        # icalendar keeps each VTIMEZONE it met under its TZID, first one wins: one
        # expert's "My Zone" must not shape another's.
        getattr(tzp, "_TZP__tz_cache", {}).clear()
        try:
            reply = _read(job, answer, split=True)
        except MemoryError:
            reply = {"error": "The calendar is too large to read."}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
