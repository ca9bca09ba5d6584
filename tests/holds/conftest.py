"""Fixtures for the holds tests: an expert open all day, and helpers to hold through the API."""

from datetime import UTC, datetime, timedelta

import pytest

from expertbook.extensions import socketio


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def start_at(days: int = 2, hour: int = 10, minute: int = 0) -> datetime:
    day = datetime.now(UTC) + timedelta(days=days)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0)


def received(sio, name):
    return [event["args"][0] for event in sio.get_received() if event["name"] == name]


@pytest.fixture
def hold_path(sync):
    return f"/api/v1/event-types/{sync.id}/holds"


@pytest.fixture
def watcher(app, sync):
    """A booking page's socket in the room of `sync`, its `joined` already read."""
    sio = socketio.test_client(app)
    sio.emit("join", {"event_type_id": sync.id})
    sio.get_received()
    return sio
