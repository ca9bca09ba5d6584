"""The data model: users and experts, event types, availability, bookings, tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, date, datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

# Limits of an event type, in minutes, held by CHECK constraints too: the busy query in
# slots.py bounds its scan by them (a booking that starts more than the longest duration and
# buffer before a range cannot reach into it).
MIN_DURATION_MINUTES = 5
MAX_DURATION_MINUTES = 720
MAX_BUFFER_MINUTES = 720
# The farthest ahead any event type may offer times (its max_days_ahead).
MAX_DAYS_AHEAD = 730


def utcnow() -> datetime:
    return datetime.now(UTC)


def hash_token(token: str) -> str:
    """Tokens are long random strings, so a plain SHA-256 is enough (no KDF needed) and
    lets us look a token up by its hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def span_checks(name: str) -> tuple[sa.CheckConstraint, ...]:
    """CHECKs that `start_at`..`end_at` is not empty and lasts at most MAX_DURATION_MINUTES,
    on each database: the busy query in slots.py bounds its scan by that."""
    return (
        sa.CheckConstraint("end_at > start_at", name="ends_after_start"),
        sa.CheckConstraint(
            f"end_at - start_at <= interval '{MAX_DURATION_MINUTES} minutes'", name=name
        ).ddl_if(dialect="postgresql"),
        sa.CheckConstraint(
            f"strftime('%s', end_at) - strftime('%s', start_at) <= {MAX_DURATION_MINUTES * 60}",
            name=name,
        ).ddl_if(dialect="sqlite"),
    )


class UTCDateTime(sa.types.TypeDecorator):
    """An aware UTC datetime: `timestamptz` on PostgreSQL, naive UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None or value.tzinfo is UTC:
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class User(UserMixin, db.Model):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(40), unique=True)
    # Stored lower-cased, so uniqueness is case-insensitive on every database.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    is_expert: Mapped[bool] = mapped_column(default=False)
    bio: Mapped[str] = mapped_column(sa.Text, default="")
    # SHA-256 of the secret in the expert's private calendar feed URL.
    calendar_secret_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    # Bumped at logout-everywhere and password change; part of the session identity.
    session_version: Mapped[int] = mapped_column(default=0)
    # Bumped in the same transaction as any change to what this expert offers (bookings,
    # event types, hours, zone): cached slot answers are keyed by it (schedule_cache.py).
    schedule_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Bumped with any change to the expert's working hours (weekly hours, overrides, zone),
    # not by bookings: the expert's cached hours are keyed by it (schedule_cache.py).
    hours_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the user opened the link mailed at sign-up; Become an Expert needs it (bookings
    # are mailed to this address). Users made by the maintainer are confirmed at once.
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Two-factor sign-in (RFC 6238 TOTP): the base32 secret, kept from enrolment on (stored
    # plain, see SECURITY.md); it signs in only once `totp_enabled_at` is set, after the user
    # typed a first code. `totp_last_counter` is the time step of the last accepted code, so
    # a code seen over someone's shoulder cannot be used a second time.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_counter: Mapped[int | None] = mapped_column()

    event_types: Mapped[list[EventType]] = relationship(
        back_populates="expert", cascade="all, delete-orphan", order_by="EventType.id"
    )
    availability_rules: Mapped[list[AvailabilityRule]] = relationship(
        back_populates="expert",
        cascade="all, delete-orphan",
        order_by="(AvailabilityRule.weekday, AvailabilityRule.start_minute)",
    )
    date_overrides: Mapped[list[DateOverride]] = relationship(
        back_populates="expert", cascade="all, delete-orphan", order_by="DateOverride.date"
    )

    def get_id(self) -> str:
        # Flask-Login keeps this in the session; a bumped session_version logs old sessions out.
        return f"{self.id}:{self.session_version}"

    @property
    def display_name(self) -> str:
        return self.name or self.username

    @property
    def email_confirmed(self) -> bool:
        return self.email_confirmed_at is not None

    @property
    def two_factor_enabled(self) -> bool:
        return self.totp_enabled_at is not None and bool(self.totp_secret)

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class EventType(db.Model):
    __tablename__ = "event_type"
    __table_args__ = (
        sa.UniqueConstraint("expert_id", "slug", name="uq_event_type_expert_slug"),
        sa.CheckConstraint(
            f"duration_minutes BETWEEN {MIN_DURATION_MINUTES} AND {MAX_DURATION_MINUTES}",
            name="duration_in_range",
        ),
        sa.CheckConstraint(
            f"buffer_before_minutes BETWEEN 0 AND {MAX_BUFFER_MINUTES} "
            f"AND buffer_after_minutes BETWEEN 0 AND {MAX_BUFFER_MINUTES}",
            name="buffers_in_range",
        ),
        # An archived type is never bookable: every query that offers types reads `active`.
        sa.CheckConstraint("archived_at IS NULL OR NOT active", name="archived_inactive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(sa.String(64))
    title: Mapped[str] = mapped_column(sa.String(120))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    duration_minutes: Mapped[int]
    location: Mapped[str] = mapped_column(sa.String(20), default="zoom")
    buffer_before_minutes: Mapped[int] = mapped_column(default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(default=0)
    min_notice_minutes: Mapped[int] = mapped_column(default=0)
    max_days_ahead: Mapped[int] = mapped_column(default=60)
    slot_interval_minutes: Mapped[int | None] = mapped_column(default=None)
    active: Mapped[bool] = mapped_column(default=True)
    # Minutes before the start each participant gets a reminder mail (at most 3, 5-10080).
    reminder_minutes: Mapped[list] = mapped_column(
        sa.JSON, default=lambda: [1440], server_default="[1440]"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the expert retired a type that has bookings: deleting it would delete them.
    # Its bookings keep their pages; the type leaves the public page, the API and the
    # dashboard's main list, and keeps its slug (restoring it brings both back).
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # A request books as `pending` (blocking the time) until the expert confirms or
    # declines it; unanswered, it is declined at the start, or `confirm_within_hours` after
    # it was made when that comes first (None: at the start).
    requires_confirmation: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    confirm_within_hours: Mapped[int | None] = mapped_column(default=None)
    # At most this many bookings (confirmed or pending) of this type a day / a week (Monday
    # to Sunday), in the expert's zone; None: no limit.
    max_per_day: Mapped[int | None] = mapped_column(default=None)
    max_per_week: Mapped[int | None] = mapped_column(default=None)
    # What the booking form asks: [{"id", "label", "kind", "required", "choices"?}], at most
    # 10 (questions.py checks them). Answers are kept on the booking.
    questions: Mapped[list] = mapped_column(sa.JSON, default=list, server_default="[]")

    expert: Mapped[User] = relationship(back_populates="event_types")

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def __repr__(self) -> str:
        return f"<EventType {self.expert_id}/{self.slug}>"


class AvailabilityRule(db.Model):
    """One interval of an expert's weekly hours, in the expert's own time zone."""

    __tablename__ = "availability_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int]  # 0 = Monday
    start_minute: Mapped[int]  # minutes since local midnight
    end_minute: Mapped[int]  # up to 1440 (24:00)

    expert: Mapped[User] = relationship(back_populates="availability_rules")


class DateOverride(db.Model):
    """Other hours on one date; an empty interval list is a day off."""

    __tablename__ = "date_override"
    __table_args__ = (
        sa.UniqueConstraint("expert_id", "date", name="uq_date_override_expert_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    date: Mapped[date] = mapped_column(sa.Date)
    # [[start_minute, end_minute], ...]
    intervals: Mapped[list] = mapped_column(sa.JSON, default=list)

    expert: Mapped[User] = relationship(back_populates="date_overrides")


class Booking(db.Model):
    __tablename__ = "booking"
    __table_args__ = (
        sa.Index("ix_booking_expert_status_start", "expert_id", "status", "start_at"),
        # Listings walk these from "now" in (start_at, id) order: see bookings/queries.py.
        sa.Index("ix_booking_expert_start", "expert_id", "start_at", "id"),
        sa.Index("ix_booking_client_start", "client_id", "start_at", "id"),
        # A limit per day or week counts an event type's bookings around a start (0017).
        sa.Index("ix_booking_event_type_start", "event_type_id", "start_at"),
        # As long as its event type's duration at most, whatever the database.
        *span_checks("duration_in_range"),
    )

    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    # Waiting for the expert (the event type requires confirmation); blocks its time.
    PENDING = "pending"
    # The expert (or the deadline) said no: the time is free again.
    DECLINED = "declined"
    # The statuses that hold the time: the exclusion constraint (PostgreSQL), the busy
    # queries and the overlap check of check-invariants all read this.
    BLOCKING = (CONFIRMED, PENDING)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(sa.String(32), unique=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    event_type_id: Mapped[int] = mapped_column(sa.ForeignKey("event_type.id", ondelete="CASCADE"))
    client_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str] = mapped_column(sa.String(254))
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(sa.String(16), default=CONFIRMED)
    video_url: Mapped[str] = mapped_column(sa.String(255), default="")
    # Why it was cancelled or declined, and when (a decline is recorded like a cancellation).
    cancel_reason: Mapped[str] = mapped_column(sa.Text, default="")
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A pending request's deadline: declined automatically when it passes unanswered.
    confirm_by: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The booker's answers to the event type's questions, {question id: value}: shown to the
    # expert, in the mails and webhooks, never on public pages.
    answers: Mapped[dict] = mapped_column(sa.JSON, default=dict, server_default="{}")
    # iCalendar SEQUENCE: grows on every change, so calendar apps update instead of duplicating.
    sequence: Mapped[int] = mapped_column(default=0)
    # SHA-256 of the guest's manage-link secret (the guest's only key).
    manage_token_hash: Mapped[str] = mapped_column(sa.String(64))
    # The zone the booking page showed when the booker named one (?tz=); "" otherwise, and
    # through the API (whose times carry an offset, not a zone). A guest's mails and pages
    # show it: a guest has no profile zone.
    timezone: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    expert: Mapped[User] = relationship(foreign_keys=[expert_id])
    client: Mapped[User | None] = relationship(foreign_keys=[client_id])
    event_type: Mapped[EventType] = relationship()

    @property
    def booker_timezone(self) -> str:
        """The zone to show the booker: a signed-in client's profile zone (as My Bookings
        shows), else the zone a guest booked in, else the expert's."""
        if self.client is not None:
            return self.client.timezone
        return self.timezone or self.expert.timezone

    @property
    def is_confirmed(self) -> bool:
        return self.status == self.CONFIRMED

    @property
    def is_pending(self) -> bool:
        return self.status == self.PENDING

    def __repr__(self) -> str:
        return f"<Booking {self.uid} {self.start_at:%Y-%m-%d %H:%M} {self.status}>"


class Hold(db.Model):
    """A slot held for a few minutes while someone fills in the booking form: nobody else
    can book a time that overlaps it until it expires or is released. Its `id` is public
    (the hold_id); only its holder can book through it, end it or renew it: the browser
    session that placed it (`session_key`, the SHA-256 of a random id kept in the session)
    or whoever has its token (`token_hash`). Expired rows are ignored by every query and
    swept."""

    __tablename__ = "slot_hold"
    __table_args__ = (
        sa.Index("ix_slot_hold_expert_start", "expert_id", "start_at"),
        sa.CheckConstraint("end_at > start_at", name="ends_after_start"),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    event_type_id: Mapped[int] = mapped_column(
        sa.ForeignKey("event_type.id", ondelete="CASCADE"), index=True
    )
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    session_key: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    # The client address that placed it (one live hold per address and expert).
    address: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(db.Model):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class IdempotencyKey(db.Model):
    """The first answer to a booking POST, replayed for a retry with the same key."""

    __tablename__ = "idempotency_key"
    __table_args__ = (
        sa.UniqueConstraint("event_type_id", "key", name="uq_idempotency_key_event_type_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_type_id: Mapped[int] = mapped_column(sa.ForeignKey("event_type.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    # SHA-256 of the request and caller: the same key with another request is refused.
    request_hash: Mapped[str] = mapped_column(sa.String(64), server_default="")
    booking_id: Mapped[int] = mapped_column(sa.ForeignKey("booking.id", ondelete="CASCADE"))
    response: Mapped[dict] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class EmailToken(db.Model):
    """A link mailed to a user: a password reset or an address confirmation. Only the
    SHA-256 of its secret is kept; it works once, until `expires_at`, and for `email` only
    (the address it was sent to)."""

    __tablename__ = "email_token"

    RESET = "reset"
    CONFIRM = "confirm"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    email: Mapped[str] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class RecoveryCode(db.Model):
    """A one-time code that stands in for the TOTP code (a lost phone). 99 random bits, so a
    plain SHA-256 is enough to store it, as for tokens."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
