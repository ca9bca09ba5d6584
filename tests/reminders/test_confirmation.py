"""Reminders of a request: none while it waits for the expert, made when it is confirmed
(as for a booking made confirmed), none after a decline."""

from __future__ import annotations

from datetime import timedelta

from expertbook.confirmation import confirm_booking, decline_booking, decline_overdue
from expertbook.outbox import OutboxMessage
from tests.pending_bookings import pending_booking, requiring_confirmation
from tests.reminders import berlin, reminders_of

START = berlin(2026, 6, 1, 15, 0)
NOW = START - timedelta(days=3)


def test_a_request_has_no_reminders_until_it_is_confirmed(any_app, expert, coaching):
    requiring_confirmation(coaching, hours=48)
    booking, _token = pending_booking(coaching, START, now=NOW)
    assert reminders_of(booking) == []
    confirm_booking(booking, actor=expert, now=NOW + timedelta(hours=1))
    rows = reminders_of(booking, OutboxMessage.PENDING)
    assert [(m.event, m.payload["role"]) for m in rows] == [
        ("1440", "client"), ("1440", "expert"), ("60", "client"), ("60", "expert"),
    ]  # fmt: skip
    assert {m.due_at for m in rows} == {START - timedelta(days=1), START - timedelta(hours=1)}


def test_a_declined_request_has_none(any_app, expert, coaching, monkeypatch):
    monkeypatch.setattr("expertbook.realtime.announce_slot_released", lambda *a: None)
    requiring_confirmation(coaching, hours=48)
    first, _token = pending_booking(coaching, START, now=NOW)
    second, _token = pending_booking(coaching, START + timedelta(hours=2), now=NOW)
    decline_booking(first, actor=expert, reason="No.", now=NOW)
    assert decline_overdue(NOW + timedelta(hours=48)) == 1
    assert reminders_of(first) == [] and reminders_of(second) == []
