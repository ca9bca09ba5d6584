"""feeds.busy_times in a child process, for large calendars.

Parsing and expanding a big calendar is seconds of pure-Python CPU. In the server process
that would stall every request (an eventlet hub cannot switch during it; an OS thread would
still hold the GIL most of the time). A child process runs it on its own, the server only
waits on a pipe (green under eventlet), and a feed built to eat memory or CPU hits the
child's limits, not the server. Small calendars are parsed in place: starting a child costs
more than they do.

Protocol: one JSON line of options, then the files' bytes back to back; the answer is one
JSON object, {"busy": [[start, end], ...]} or {"error": message}.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from ..scheduling import Interval
from .feeds import FeedError, busy_times

ROOT = Path(__file__).resolve().parents[2]
# Below this many bytes a calendar is parsed in place (a few milliseconds to tens of them).
IN_PLACE_BYTES = 256 * 1024
TIMEOUT = 60.0
MEMORY_LIMIT = 1 << 30  # bytes of address space for the child
CPU_LIMIT = 60  # seconds


def parse(
    data: bytes | list[bytes],
    *,
    start: datetime,
    end: datetime,
    default_tz: str,
    own_uids: frozenset[str] = frozenset(),
) -> list[Interval]:
    """feeds.busy_times, in a child process unless the calendar is small and has no
    recurrence rules. Events whose UID is in `own_uids` (the expert's bookings written back)
    are skipped.

    Raises:
        FeedError: the calendar cannot be read (as busy_times says, or the child ran out of
            time or memory).
    """
    files = [data] if isinstance(data, bytes) else list(data)
    options = dict(start=start, end=end, default_tz=default_tz)
    cheap = sum(map(len, files)) < IN_PLACE_BYTES and not any(
        b"RRULE" in file or b"RDATE" in file for file in files
    )
    if cheap:
        return busy_times(files, is_own_uid=_is_in(own_uids), **options)
    header = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "default_tz": default_tz,
        "own_uids": sorted(own_uids),
        "sizes": [len(file) for file in files],
    }
    payload = json.dumps(header).encode() + b"\n" + b"".join(files)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "expertbook.calendars.parse_worker"],
            input=payload,
            capture_output=True,
            timeout=TIMEOUT,
            cwd=ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise FeedError("The calendar took too long to read.") from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise FeedError("The calendar is too large or too complex to read.") from None
    if "error" in answer:
        raise FeedError(answer["error"])
    return [
        Interval(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in answer["busy"]
    ]


def _is_in(uids: frozenset[str]):
    return lambda uid: uid.strip() in uids


def main() -> None:
    """The child: read options and files from stdin, write the answer to stdout."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT, CPU_LIMIT))
    stream = sys.stdin.buffer
    header = json.loads(stream.readline())
    files = [stream.read(size) for size in header["sizes"]]
    try:
        busy = busy_times(
            files,
            start=datetime.fromisoformat(header["start"]),
            end=datetime.fromisoformat(header["end"]),
            default_tz=header["default_tz"],
            is_own_uid=_is_in(frozenset(header["own_uids"])),
        )
        answer = {"busy": [[i.start.isoformat(), i.end.isoformat()] for i in busy]}
    except FeedError as error:
        answer = {"error": error.message}
    except MemoryError:
        answer = {"error": "The calendar is too large to read."}
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
