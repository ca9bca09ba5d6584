"""`flask check-invariants` on SQLite and PostgreSQL, with planted violations."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from config import TestingConfig
from expertbook import create_app
from expertbook.availability import set_availability
from expertbook.extensions import db
from expertbook.models import Booking, utcnow
from expertbook.outbox import OutboxMessage, message_row
from tests.booking_fixtures import insert_booking
from tests.reminders import book

OK = (
    "OK: no overlapping bookings, no stuck messages, no booking without its mail,"
    " no overdue request"
)
CONSTRAINT = "booking_confirmed_no_overlap"
EXCLUDE = (
    f"ALTER TABLE booking ADD CONSTRAINT {CONSTRAINT} EXCLUDE USING gist "
    "(expert_id WITH =, tstzrange(start_at, end_at, '[)') WITH &&)"
    " WHERE (status IN ('confirmed', 'pending'))"
)


@pytest.fixture
def expert(any_app, make_user):
    user = make_user("berta", expert=True, timezone="Europe/Berlin")
    set_availability(user, "Europe/Berlin", {day: [(0, 1440)] for day in range(7)})
    db.session.commit()
    return user


@pytest.fixture
def coaching(expert, make_event_type):
    return make_event_type(expert, slug="coaching", title="Coaching", duration_minutes=60)


@pytest.fixture
def check(any_app):
    runner = any_app.test_cli_runner()

    def run(*args: str):
        return runner.invoke(args=["check-invariants", *args])

    return run


def report(result) -> list[str]:
    """The lines on stdout, after checking the exit and the one-line summary on stderr."""
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"Error: {len(lines)} invariant violation(s)"
    return lines


@contextmanager
def overlaps_allowed() -> Iterator[None]:
    """PostgreSQL refuses overlapping confirmed bookings (its exclusion constraint): drop
    it while the test plants some, then put it back (this run's own database)."""
    postgres = db.engine.dialect.name == "postgresql"
    if postgres:
        db.session.execute(sa.text(f"ALTER TABLE booking DROP CONSTRAINT {CONSTRAINT}"))
        db.session.commit()
    try:
        yield
    finally:
        if postgres:
            db.session.rollback()
            db.session.execute(sa.delete(Booking))
            db.session.execute(sa.text(EXCLUDE))
            db.session.commit()


def message(kind=OutboxMessage.MAIL, **fields) -> OutboxMessage:
    """A committed outbox row; `fields` override message_row's values."""
    now = fields.pop("now", utcnow())
    values = message_row(kind, now=now, payload=fields.pop("payload", {"role": "client"}))
    values.update(fields)
    row = OutboxMessage(**values)
    db.session.add(row)
    db.session.commit()
    return row


def test_a_sound_database_is_ok_in_one_line(check, coaching):
    start = utcnow().replace(microsecond=0) + timedelta(days=3)
    booking, _link = book(coaching, start.replace(minute=0, second=0), now=utcnow())
    # Its mails, due now, and reminders, due later, are pending: on time, not stuck.
    assert db.session.scalar(
        sa.select(sa.func.count()).where(OutboxMessage.booking_id == booking.id)
    )
    result = check()
    assert (result.exit_code, result.output) == (0, OK + "\n")


def test_an_empty_database_is_ok(check, any_app):
    result = check()
    assert (result.exit_code, result.output) == (0, OK + "\n")


def test_overlapping_bookings_are_named(check, expert, coaching, make_user, make_event_type):
    start = (utcnow() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    with overlaps_allowed():
        first = insert_booking(coaching, start)
        second = insert_booking(coaching, start + timedelta(minutes=30))
        same_start = insert_booking(coaching, start + timedelta(minutes=30), minutes=5)
        # A pending request holds its time like a confirmed booking.
        pending = insert_booking(coaching, start + timedelta(hours=5), status=Booking.PENDING)
        confirmed = insert_booking(coaching, start + timedelta(hours=5, minutes=30))
        # Not overlaps: back to back, cancelled, declined, another expert's.
        insert_booking(coaching, start + timedelta(hours=2))
        insert_booking(coaching, start + timedelta(hours=3))
        insert_booking(coaching, start + timedelta(hours=3), status=Booking.CANCELLED)
        insert_booking(coaching, start + timedelta(hours=2), status=Booking.DECLINED)
        other = make_event_type(make_user("otto", expert=True), slug="x", duration_minutes=60)
        insert_booking(other, start)
        lines = report(check())
        pairs = [(first, second), (first, same_start), (second, same_start), (pending, confirmed)]
        expected = [(a.uid, b.uid) for a, b in sorted(pairs, key=lambda p: (p[0].id, p[1].id))]
    assert len(lines) == 4
    for line, (a, b) in zip(lines, expected, strict=True):
        assert line.startswith(f"overlap: expert berta: booking {a} (")
        assert f") and booking {b} (" in line
    assert f"{start:%Y-%m-%d %H:%M}Z to {start + timedelta(hours=1):%Y-%m-%d %H:%M}Z" in lines[0]


def test_failed_and_late_messages_are_stuck(check, expert, coaching):
    now = utcnow()
    booking = insert_booking(coaching, now + timedelta(days=2))
    message(booking_id=booking.id, expert_id=expert.id)  # its mail: nothing missing
    failed = message(
        OutboxMessage.REMINDER,
        event="1440",
        booking_id=booking.id,
        expert_id=expert.id,
        payload={"role": "client", "to": "bob@example.com"},
        status=OutboxMessage.FAILED,
        attempts=31,
        last_error="The mail server refused the mail (550 no such user)",
        now=now - timedelta(days=2),
    )
    late = message(
        OutboxMessage.WEBHOOK,
        event="booking.created",
        expert_id=expert.id,
        booking_id=booking.id,
        due_at=now - timedelta(hours=1),
        attempts=2,
        last_error="HTTP 500",
        now=now - timedelta(hours=2),
    )
    # Not stuck: failed long ago, due a moment ago, claimed by a worker now, due later,
    # sent, cancelled, and a mail waiting behind an earlier mail of its booking that retries.
    message(status=OutboxMessage.FAILED, now=now - timedelta(days=30))
    message(due_at=now - timedelta(minutes=5))
    message(due_at=now - timedelta(hours=1), claimed_until=now + timedelta(minutes=3))
    message(OutboxMessage.REMINDER, due_at=now + timedelta(days=1), event="60")
    message(status=OutboxMessage.SENT, due_at=now - timedelta(days=3))
    message(OutboxMessage.REMINDER, status=OutboxMessage.CANCELLED, due_at=now - timedelta(days=1))
    retrying = insert_booking(coaching, now + timedelta(days=3))
    message(
        booking_id=retrying.id, due_at=now + timedelta(minutes=10), now=now - timedelta(hours=3)
    )
    message(booking_id=retrying.id, due_at=now - timedelta(hours=2), now=now - timedelta(hours=2))
    lines = report(check())
    assert lines == [
        f"stuck: failed reminder message {failed.uid} (Reminder mail (1 day before),"
        f" to bob@example.com, booking {booking.uid}, expert berta): given up after 31"
        " attempt(s): The mail server refused the mail (550 no such user)",
        f"stuck: pending webhook message {late.uid} (Webhook booking.created, to a removed"
        f" webhook endpoint, booking {booking.uid}, expert berta):"
        f" due {late.due_at:%Y-%m-%d %H:%M}Z, 60 minutes ago, 2 attempt(s), last error: HTTP 500",
    ]
    # The windows are the maintainer's to choose.
    assert len(report(check("--failed-days", "60"))) == 3
    assert len(report(check("--late-minutes", "1"))) == 3


def test_bookings_without_their_mail_since_the_outbox_exists(check, expert, coaching):
    now = utcnow()
    old = insert_booking(coaching, now + timedelta(days=2))
    old.created_at = now - timedelta(days=30)  # made before the upgrade: not counted
    db.session.commit()
    message(now=now - timedelta(days=1), status=OutboxMessage.SENT)  # the outbox's first row
    missing = insert_booking(coaching, now + timedelta(days=3))
    pending = insert_booking(coaching, now + timedelta(days=6), status=Booking.PENDING)
    cancelled = insert_booking(coaching, now + timedelta(days=4), status=Booking.CANCELLED)
    fine, _link = book(
        coaching, (now + timedelta(days=5)).replace(minute=0, second=0, microsecond=0), now=now
    )
    lines = report(check())
    assert lines == [
        f"missing: booking {b.uid} of expert berta"
        f" (made {b.created_at:%Y-%m-%d %H:%M}Z, starts {b.start_at:%Y-%m-%d %H:%M}Z)"
        " has no mail in the outbox"
        for b in (missing, pending)
    ]
    assert not any(cancelled.uid in line or fine.uid in line for line in lines)


def test_requests_left_pending_past_their_deadline(check, expert, make_event_type):
    """No sweeper declined them: their time stays blocked and their booker waits."""
    asked = make_event_type(expert, slug="asked", requires_confirmation=True)
    now = utcnow()
    overdue = insert_booking(asked, now + timedelta(days=1), status=Booking.PENDING)
    overdue.confirm_by = now - timedelta(minutes=16)
    just_due = insert_booking(asked, now + timedelta(days=2), status=Booking.PENDING)
    just_due.confirm_by = now - timedelta(minutes=5)  # within --late-minutes: a sweep away
    db.session.commit()
    lines = [line for line in report(check()) if not line.startswith("missing:")]
    assert lines == [
        f"overdue: request {overdue.uid} of expert berta is still pending, its deadline"
        f" {overdue.confirm_by:%Y-%m-%d %H:%M}Z passed (no sweeper is declining requests)"
    ]


@pytest.mark.parametrize(
    "args",
    [["--late-minutes", "0"], ["--late-minutes", "soon"], ["--failed-days", "-1"], ["--colour"]],
)
def test_bad_options_are_one_line(check, args):
    result = check(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize(
    ("database", "reason"),
    [
        ("sqlite:///{tmp}/empty.db", "no such table"),  # never migrated
        ("postgresql://postgres@127.0.0.1:9/none", "connection"),  # nobody listens
    ],
)
def test_a_database_it_cannot_read_is_one_line(tmp_path, database, reason):
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=database.format(tmp=tmp_path))
    result = app.test_cli_runner().invoke(args=["check-invariants"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (line,) = result.output.splitlines()
    assert line.startswith("Error: could not read the database: ")
    assert reason in line.lower()


def test_bookings_older_than_the_outbox_s_retention_are_not_counted(check, expert, coaching):
    now = utcnow()
    message(now=now - timedelta(days=90), status=OutboxMessage.SENT)  # the outbox's first row
    swept = insert_booking(coaching, now + timedelta(days=2))
    swept.created_at = now - timedelta(days=31)  # its sent mails may have been swept
    db.session.commit()
    missing = insert_booking(coaching, now + timedelta(days=3))
    lines = report(check())
    assert len(lines) == 1 and missing.uid in lines[0] and swept.uid not in lines[0]
