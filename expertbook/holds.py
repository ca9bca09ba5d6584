"""Live holds: a slot held for a few minutes while someone fills in the booking form.

A hold blocks its time like a booking of its event type (with the type's buffers) for
everybody but its holder, until it is released, booked through or expires. Its holder is
the browser session that placed it or whoever has its token (`Holder`). Holds are rows,
written under the expert's booking lock, so they hold across server processes; expired rows
are ignored by every query and deleted by the sweeper (expertbook/sweeper.py), whose caller
announces them released.

Operations take `now` and commit their own transaction; callers announce after the commit
(realtime.announce_slot_held, announce_hold_released).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app, session

from . import booking_statements as statements
from .booking_checks import (
    Holder,
    SlotUnavailable,
    UnknownEventType,
    check_free,
    lock_expert_for_booking,
    read_locked,
)
from .database import booking_transaction
from .extensions import client_network, db
from .models import Booking, Hold, hash_token, new_token
from .scheduling import iso_z
from .slots import within_any_horizon

# A hold lives this long after it is placed or last renewed.
HOLD_TTL = timedelta(minutes=5)
# A hold ends this long after it was first placed, however often renewed: a page left open
# does not keep a time from everybody else for ever (it may place a new hold, if the time
# is still free).
HOLD_MAX_LIFETIME = timedelta(minutes=20)
# The random id of this browser's holds, kept in the Flask session (its SHA-256 is stored).
SESSION_KEY = "hold_key"
HOLD_ID_RE = re.compile(r"[0-9a-f]{32}")


class HoldExpired(Exception):
    """The hold has run its course (HOLD_MAX_LIFETIME): it cannot be renewed."""


def disconnect_grace() -> timedelta:
    """How long a hold bound to a socket lives on after the socket has gone (the app's
    HOLD_DISCONNECT_GRACE_SECONDS, 30 s unless configured)."""
    return timedelta(seconds=current_app.config["HOLD_DISCONNECT_GRACE_SECONDS"])


def lifetime_end(hold: Hold) -> datetime:
    """When `hold` ends at the latest, however often renewed."""
    return hold.created_at + HOLD_MAX_LIFETIME


def token_holder(token: Any) -> Holder:
    """The holder named by a hold token (the X-Hold-Token header); nobody for junk."""
    if not isinstance(token, str) or not 0 < len(token) <= 100:
        return Holder()
    return Holder(token_hash=hash_token(token))


def page_holder(create: bool = False) -> Holder:
    """This browser session as a holder (needs a request context). Without `create`, a
    session that never held anything is nobody (Holder()); with it, the session gets its
    random hold key now."""
    key = session.get(SESSION_KEY)
    if not (isinstance(key, str) and HOLD_ID_RE.fullmatch(key)):
        if not create:
            return Holder()
        key = session[SESSION_KEY] = secrets.token_hex(16)
    return Holder(session_key=hashlib.sha256(key.encode()).hexdigest())


def hold_payload(hold: Hold) -> dict:
    """A hold as its holder is shown it (the API's answers, the socket's `held`)."""
    return {
        "hold_id": hold.id,
        "start": iso_z(hold.start_at),
        "end": iso_z(hold.end_at),
        "expires_at": iso_z(hold.expires_at),
    }


def is_hold_id(value: Any) -> bool:
    return isinstance(value, str) and HOLD_ID_RE.fullmatch(value) is not None


def place_hold(
    event_type_id: int,
    start: datetime,
    *,
    holder_session_key: str,
    address: str,
    now: datetime,
    holder_token_hash: str | None = None,
) -> tuple[Hold, str, list[Hold]]:
    """Hold `start` of an event type for HOLD_TTL, and commit.

    In the expert's booking lock (which also bumps their schedule version), checked as
    book_slot checks a booking: the start must be an offered slot that nothing booked
    blocks, within the event type's limits, and no live hold of anybody else may overlap
    it. The holder's (same session, or the token of `holder_token_hash`) and this client
    network's other holds of the expert are released: one live hold per session and
    network (extensions.client_network: an IPv6 /64) per expert. The holder's own live
    hold of this very start is kept, renewed (never past HOLD_MAX_LIFETIME), with a new
    token (a reload of the confirm page); once past it, a new hold replaces it.

    Args:
        holder_session_key: the session's holder key (page_holder(True)), "" for none.
        address: the client address.

    Returns:
        The hold (a plain object; its `event_type_ids` are the rooms to tell), its token
        (shown this once; only its hash is stored), and the holds it replaced (announce
        them released, then the hold held, after this returns).

    Raises:
        UnknownEventType: no such event type, or not active.
        SlotUnavailable: the start is not offered, or taken.
        LimitReached: the expert's day or week is full for this event type.
        SlotHeld: another holder's live hold blocks it (with `retry_after`).
    """
    if not within_any_horizon(start, now):
        raise SlotUnavailable("That time is not available.")
    holder = Holder(token_hash=holder_token_hash, session_key=holder_session_key or None)
    address = client_network(address or "")
    token = new_token()
    postgres = db.session.get_bind().dialect.name == "postgresql"
    with booking_transaction(inline_settings=postgres) as in_band:
        # Locks the expert and bumps their schedule version; reads the event type fresh,
        # what keeps the expert busy (holds left out), what the limits count, the live
        # holds around the start and the holder's own (on PostgreSQL in one round trip).
        if postgres:
            locked = statements.read_locked(
                in_band, event_type_id, start, None, holder, now, for_hold=True
            )
        else:
            locked = read_locked(event_type_id, start, None, holder, now)
        if locked is None:
            raise UnknownEventType("No such event type.")
        event_type = locked.event_type
        if not event_type.active:
            raise UnknownEventType("This event type is not available.")
        check_free(event_type, start, now, locked, holder)
        kept = next(
            (
                h
                for h in locked.own_holds
                if h.expires_at > now
                and lifetime_end(h) > now
                and h.event_type_id == event_type_id
                and h.start_at == start
            ),
            None,
        )
        expires_at = now + HOLD_TTL if kept is None else min(now + HOLD_TTL, lifetime_end(kept))
        hold = Hold(
            id=kept.id if kept is not None else secrets.token_hex(16),
            expert_id=locked.expert.id,
            event_type_id=event_type_id,
            start_at=start,
            end_at=start + timedelta(minutes=event_type.duration_minutes),
            expires_at=expires_at,
            token_hash=hash_token(token),
            session_key=kept.session_key if kept is not None else holder.session_key or "",
            address=address,
            created_at=kept.created_at if kept is not None else now,
        )
        own = [h.id for h in locked.own_holds if h is not kept]
        released = _write_hold(hold, kept is not None, own, address)
    # Not a column: the expert's event types, read in the lock (the rooms to tell).
    hold.event_type_ids = locked.event_type_ids
    # Only holds that were still live were on anybody's page as held.
    return hold, token, [h for h in released if h.expires_at > now]


# One statement: end the holder's other holds of the expert and the address's, then
# renew the kept hold or add the new one; it answers with the holds it ended.
_WRITE = sa.text("""WITH gone AS (
 DELETE FROM slot_hold WHERE expert_id = :expert_id AND id <> :id
 AND ((:address <> '' AND address = :address) OR id = ANY(:own))
 RETURNING id, expert_id, event_type_id, start_at, end_at, expires_at),
renewed AS (
 UPDATE slot_hold SET expires_at = :expires_at, token_hash = :token_hash
 WHERE id = :id AND :kept RETURNING id),
added AS (
 INSERT INTO slot_hold (id, expert_id, event_type_id, start_at, end_at, expires_at,
  token_hash, session_key, address, created_at)
 SELECT :id, :expert_id, :event_type_id, :start_at, :end_at, :expires_at, :token_hash,
  :session_key, :address, :created_at WHERE NOT :kept RETURNING id)
SELECT * FROM gone""").columns(
    sa.column("id"),
    sa.column("expert_id"),
    sa.column("event_type_id"),
    Hold.start_at,
    Hold.end_at,
    Hold.expires_at,
)


def _write_hold(hold: Hold, kept: bool, own: list[str], address: str) -> list[Hold]:
    """Write `hold` (renewing it when `kept`) and end the holder's `own` other holds and
    the address's; return those ended (plain objects)."""
    if db.session.get_bind().dialect.name == "postgresql":
        params = {column.name: getattr(hold, column.name) for column in Hold.__table__.columns} | {
            "kept": kept,
            "own": own,
            "address": address,
        }
        rows = db.session.execute(_WRITE, params).mappings().all()
        return [Hold(**row) for row in rows]
    ended = db.session.scalars(
        sa.select(Hold)
        .where(Hold.expert_id == hold.expert_id, Hold.id != hold.id)
        .where(
            sa.or_(sa.false(), *([Hold.address == address] if address else []), Hold.id.in_(own))
        )
    ).all()
    if ended:
        db.session.execute(sa.delete(Hold).where(Hold.id.in_([h.id for h in ended])))
    if kept:
        db.session.execute(
            sa.update(Hold)
            .where(Hold.id == hold.id)
            .values(expires_at=hold.expires_at, token_hash=hold.token_hash)
            .execution_options(synchronize_session=False)
        )
    else:
        db.session.execute(sa.insert(Hold.__table__).values(
            {column.name: getattr(hold, column.name) for column in Hold.__table__.columns}
        ))  # fmt: skip
    return [Hold(**{c.name: getattr(h, c.name) for c in Hold.__table__.columns}) for h in ended]


def _owned_hold(hold_id: Any, holder: Holder) -> Hold | None:
    if not is_hold_id(hold_id):
        return None
    hold = db.session.get(Hold, hold_id, populate_existing=True)
    if hold is None or not holder.owns(hold):
        return None
    return hold


def release_hold(hold_id: Any, holder: Holder) -> tuple[Hold, bool] | None:
    """End the holder's hold `hold_id`, and commit.

    Returns:
        The hold ended, and whether to announce it released (not when a booking has taken
        its time since it expired: the pages were told slot_taken); or None when there is
        no such hold of this holder (another's hold is "no such hold" too).
    """
    hold = _owned_hold(hold_id, holder)
    if hold is None:
        return None
    with booking_transaction():
        lock_expert_for_booking(hold.expert_id)
        deleted = db.session.execute(sa.delete(Hold).where(Hold.id == hold.id)).rowcount
        free = bool(_not_taken([hold]))
    return (hold, free) if deleted else None


def renew_hold(hold_id: Any, holder: Holder, now: datetime) -> Hold | None:
    """Give the holder's live hold another HOLD_TTL from `now` (never past its
    HOLD_MAX_LIFETIME), and commit.

    Returns:
        The hold, or None when this holder has no such live hold (an expired hold is not
        revived: its time may be taken; place a new one).

    Raises:
        HoldExpired: the hold has reached its HOLD_MAX_LIFETIME (place a new one).
    """
    hold = _owned_hold(hold_id, holder)
    if hold is not None and lifetime_end(hold) <= now:
        db.session.rollback()
        raise HoldExpired("This hold has run its course.")
    if hold is None or hold.expires_at <= now:
        db.session.rollback()
        return None
    expires_at = min(now + HOLD_TTL, lifetime_end(hold))
    renewed = db.session.execute(
        sa.update(Hold)
        .where(Hold.id == hold.id, Hold.expires_at > now)
        .values(expires_at=expires_at)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not renewed:
        return None
    hold.expires_at = expires_at
    return hold


def shorten_holds(bound: dict[str, datetime], until: datetime) -> int:
    """Let the holds end by `until` at the latest (their socket has gone), and commit.

    Args:
        bound: hold id -> the expiry the socket's last bind gave it. A hold whose expiry
            is later has been renewed since (bound again by the page's new socket, on any
            process, or renewed through the API): the page is still there, so it is left.

    Returns:
        How many were shortened.
    """
    count = 0
    for hold_id, bound_until in bound.items():
        count += db.session.execute(
            sa.update(Hold)
            .where(Hold.id == hold_id, Hold.expires_at > until, Hold.expires_at <= bound_until)
            .values(expires_at=until)
            .execution_options(synchronize_session=False)
        ).rowcount
    db.session.commit()
    return count


def _not_taken(ended: list[Hold]) -> list[Hold]:
    """Those of the `ended` holds (of one expert) whose time no confirmed or pending booking
    overlaps: a hold that expired and whose time someone then booked is not announced
    released (the pages were told slot_taken)."""
    if not ended:
        return []
    taken = db.session.execute(
        sa.select(Booking.start_at, Booking.end_at).where(
            Booking.expert_id == ended[0].expert_id,
            Booking.status.in_(Booking.BLOCKING),
            Booking.start_at < max(h.end_at for h in ended),
            Booking.end_at > min(h.start_at for h in ended),
        )
    ).all()
    return [h for h in ended if not any(s < h.end_at and h.start_at < e for s, e in taken)]


def _delete_expired(expert_id: int, now: datetime) -> list[Hold]:
    """Delete the expert's holds expired by `now` (in their lock); return those deleted.
    The DELETE checks the expiry itself: a renewal (which takes no lock) committed since
    any earlier read keeps its hold."""
    expired = sa.delete(Hold.__table__).where(Hold.expert_id == expert_id, Hold.expires_at <= now)
    if db.session.get_bind().dialect.delete_returning:
        rows = db.session.execute(expired.returning(*Hold.__table__.columns)).mappings()
        return [Hold(**row) for row in rows]
    # No RETURNING (SQLite before 3.35): its transactions are serialized, so no renewal
    # commits between this read and the DELETE.
    found = db.session.execute(sa.select(Hold.__table__).where(expired.whereclause)).all()
    db.session.execute(expired)
    return [Hold(**row._mapping) for row in found]


def sweep_expired(now: datetime) -> list[Hold]:
    """Delete the holds expired by `now`, each expert's under their lock (bumping their
    schedule version), and commit.

    Returns:
        The holds deleted whose time no booking has taken since: the caller announces
        each released.
    """
    experts = db.session.scalars(
        sa.select(Hold.expert_id).where(Hold.expires_at <= now).distinct()
    ).all()
    db.session.rollback()
    swept: list[Hold] = []
    for expert_id in experts:
        with booking_transaction():
            lock_expert_for_booking(expert_id)
            swept.extend(_not_taken(_delete_expired(expert_id, now)))
    return swept
