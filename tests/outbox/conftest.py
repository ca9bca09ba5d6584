"""Outbox fixtures: a message kind of the tests' own, delivered by a programmable handler,
and a clock the tests move by hand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from expertbook.extensions import db
from expertbook.outbox import HANDLERS, DeliveryError, enqueue, message_row
from tests.e2e.conftest import pg_site, sqlite_site, start_server  # noqa: F401  (fixtures)

PROBE = "probe"


class Probe:
    """The handler of PROBE messages: records each delivery (uid, in order) and fails as
    told: `fail_with` an exception (or a list of them, used up one per delivery)."""

    def __init__(self):
        self.delivered: list[str] = []
        self.fail_with: BaseException | list | None = None
        self.lock = threading.Lock()

    def __call__(self, message):
        with self.lock:
            failure = self.fail_with
            if isinstance(failure, list):
                failure = failure.pop(0) if failure else None
            if failure is not None:
                raise failure
            self.delivered.append(message.uid)
        return 200


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def probe():
    handler = Probe()
    HANDLERS[PROBE] = handler
    yield handler
    HANDLERS.pop(PROBE, None)


@pytest.fixture
def clock():
    return Clock(datetime(2030, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def add_messages(clock):
    """Factory: add_messages(n, kind=PROBE, **fields) -> committed rows' uids."""

    def add(count: int = 1, *, kind: str = PROBE, now=None, **fields) -> list[str]:
        rows = [message_row(kind, now=now or clock.now, **fields) for _ in range(count)]
        enqueue(rows)
        db.session.commit()
        db.session.info.clear()
        return [row["uid"] for row in rows]

    return add


def failure(message: str = "receiver down", **kwargs) -> DeliveryError:
    return DeliveryError(message, **kwargs)
