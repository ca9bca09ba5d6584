"""The outbox: what is to be said about a change, written in the change's own transaction.

A row is a message (one mail to one address, one reminder mail, one webhook delivery, one
calendar write-back) with a stable `uid`: the Message-ID of a mail, the
`X-ExpertBook-Delivery` of a webhook. Workers deliver due rows after the commit, at least
once, retrying with growing pauses; see worker.py.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import UTCDateTime, utcnow


def new_uid() -> str:
    return secrets.token_hex(16)


def _partial_index(name: str, *columns: str, where: str) -> sa.Index:
    """An index of the rows for which `where` holds, on PostgreSQL and SQLite alike."""
    condition = sa.text(where)
    return sa.Index(name, *columns, postgresql_where=condition, sqlite_where=condition)


class OutboxMessage(db.Model):
    __tablename__ = "outbox_message"
    __table_args__ = (
        # Rows done with (sent, cancelled, failed) by age: retention, the given-up list.
        # Partial, as the endpoint's below: every index a new row enters costs the booking
        # that writes it (four rows, mails and reminders, in its transaction), and these
        # two held every pending row for nothing (migration 0016).
        _partial_index(
            "ix_outbox_message_done_due", "status", "due_at", where="status <> 'pending'"
        ),
        # A webhook's deliveries (and the cascade of its removal); mails have no endpoint.
        _partial_index(
            "ix_outbox_message_endpoint_id", "endpoint_id", where="endpoint_id IS NOT NULL"
        ),
        # The workers' claim, which must stay fast however long the backlog: due pending
        # rows, oldest first, read in index order; and "is an older row of this booking
        # and kind still pending?", asked of each. Partial, so the sent history (most
        # rows) is in neither, and the plan holds while the table's statistics lag behind a
        # burst (with only a (status, due_at) index, a claim over 16,000 pending mails took
        # 42 s).
        _partial_index("ix_outbox_message_pending_due", "due_at", "id", where="status = 'pending'"),
        _partial_index(
            "ix_outbox_message_pending_booking",
            "booking_id",
            "kind",
            "created_at",
            where="status = 'pending'",
        ),
    )

    # kind
    MAIL = "mail"
    REMINDER = "reminder"
    WEBHOOK = "webhook"
    WRITEBACK = "writeback"
    # status
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # retried for the whole window, then given up: the expert sees it
    CANCELLED = "cancelled"  # no longer to be said (a reminder of a cancelled booking)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_uid)
    kind: Mapped[str] = mapped_column(sa.String(16))
    # What happened: a mail's kind (booked, rescheduled, cancelled), a webhook's event
    # (booking.created, ...), a reminder's minutes before the start ("1440").
    event: Mapped[str] = mapped_column(sa.String(40), default="")
    booking_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("booking.id", ondelete="CASCADE"), index=True
    )
    # Whose message it is: the expert sees failed deliveries.
    expert_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("webhook_endpoint.id", ondelete="CASCADE")
    )
    # Kind-specific details (a mail's recipient and role, a webhook's body as first built).
    payload: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default=PENDING)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A worker that claimed the row delivers it before this; after it, any worker may.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(sa.String(500), default="")
    # The receiver's last answer (HTTP status of a webhook, SMTP reply code of a mail).
    status_code: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.id} {self.kind} {self.event} {self.status}>"


class WebhookEndpoint(db.Model):
    """An expert's webhook: where booking events are POSTed, signed with `secret`."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    # ["booking.created", "booking.rescheduled", "booking.cancelled", ...]
    events: Mapped[list] = mapped_column(sa.JSON, default=list)
    # The HMAC key, encrypted at rest (calendars.secrets); shown to the expert once.
    secret: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
