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
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import session

from .extensions import db
from .models import MAX_BUFFER_MINUTES, Hold, hash_token, new_token

# A hold lives this long after it is placed or last renewed.
HOLD_TTL = timedelta(minutes=5)
# A hold bound to a socket ends this long after the socket has gone.
DISCONNECT_GRACE = timedelta(seconds=30)
# The random id of this browser's holds, kept in the Flask session (its SHA-256 is stored).
SESSION_KEY = "hold_key"
HOLD_ID_RE = re.compile(r"[0-9a-f]{32}")
# How far a hold's own buffers can reach beyond its time.
_REACH = timedelta(minutes=MAX_BUFFER_MINUTES)


@dataclass(frozen=True)
class Holder:
    """Who is acting on holds: the SHA-256 of a hold token and/or of the browser
    session's hold key. A hold belongs to the holder when either matches (non-empty)."""

    token_hash: str | None = None
    session_key: str | None = None

    def owns(self, hold: Hold) -> bool:
        if self.token_hash and hmac.compare_digest(hold.token_hash, self.token_hash):
            return True
        return bool(self.session_key) and hold.session_key == self.session_key


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
    it. The holder's (same session, or the token of `holder_token_hash`) and this address's
    other holds of the expert are released: one live hold per session and address per
    expert. The holder's own live hold of this very start is kept, renewed,
    with a new token (a reload of the confirm page).

    Args:
        holder_session_key: the session's holder key (page_holder(True)), "" for none.
        address: the client address.

    Returns:
        The hold, its token (shown this once; only its hash is stored), and the holds it
        replaced (announce them released, then the hold held, after this returns).

    Raises:
        UnknownEventType: no such event type, or not active.
        SlotUnavailable: the start is not offered, or taken.
        LimitReached: the expert's day or week is full for this event type.
        SlotHeld: another holder's live hold blocks it (with `retry_after`).
    """
    # The booking path's own reading and checks, in the same lock and order.
    from .booking import SlotUnavailable, UnknownEventType, _check_free, _read_locked
    from .database import booking_transaction
    from .slots import within_any_horizon

    if not within_any_horizon(start, now):
        raise SlotUnavailable("That time is not available.")
    holder = Holder(token_hash=holder_token_hash, session_key=holder_session_key or None)
    address = (address or "")[:64]
    token = new_token()
    with booking_transaction():
        # Locks the expert and bumps their schedule version; reads the event type fresh,
        # what keeps the expert busy (holds left out), what the limits count, live holds.
        locked = _read_locked(event_type_id, start, None, holder, now)
        if locked is None:
            raise UnknownEventType("No such event type.")
        event_type, expert_id = locked.event_type, locked.expert.id
        if not event_type.active:
            raise UnknownEventType("This event type is not available.")
        _check_free(event_type, start, now, locked, holder)
        mine = db.session.scalars(
            sa.select(Hold)
            .where(Hold.expert_id == expert_id)
            .where(
                sa.or_(
                    sa.false(),
                    *([Hold.address == address] if address else []),
                    *([Hold.session_key == holder.session_key] if holder.session_key else []),
                    *([Hold.token_hash == holder.token_hash] if holder.token_hash else []),
                )
            )
            .execution_options(populate_existing=True)
        ).all()
        kept = next(
            (
                h
                for h in mine
                if holder.owns(h)
                and h.expires_at > now
                and h.event_type_id == event_type_id
                and h.start_at == start
            ),
            None,
        )
        released = [h for h in mine if h is not kept]
        if released:
            db.session.execute(sa.delete(Hold).where(Hold.id.in_([h.id for h in released])))
        if kept is not None:
            kept.expires_at = now + HOLD_TTL
            kept.token_hash = hash_token(token)
            hold = kept
        else:
            hold = Hold(
                id=secrets.token_hex(16),
                expert_id=expert_id,
                event_type_id=event_type_id,
                start_at=start,
                end_at=start + timedelta(minutes=event_type.duration_minutes),
                expires_at=now + HOLD_TTL,
                token_hash=hash_token(token),
                session_key=holder.session_key or "",
                address=address,
                created_at=now,
            )
            db.session.add(hold)
    # Only holds that were still live were on anybody's page as held.
    return hold, token, [h for h in released if h.expires_at > now]


def _owned_hold(hold_id: Any, holder: Holder) -> Hold | None:
    if not is_hold_id(hold_id):
        return None
    hold = db.session.get(Hold, hold_id, populate_existing=True)
    if hold is None or not holder.owns(hold):
        return None
    return hold


def release_hold(hold_id: Any, holder: Holder) -> Hold | None:
    """End the holder's hold `hold_id`, and commit.

    Returns:
        The hold ended (announce it released), or None when there is no such hold of
        this holder (another's hold is "no such hold" too).
    """
    from .booking import _lock_expert_for_booking
    from .database import booking_transaction

    hold = _owned_hold(hold_id, holder)
    if hold is None:
        return None
    with booking_transaction():
        _lock_expert_for_booking(hold.expert_id)
        deleted = db.session.execute(sa.delete(Hold).where(Hold.id == hold.id)).rowcount
    return hold if deleted else None


def renew_hold(hold_id: Any, holder: Holder, now: datetime) -> Hold | None:
    """Give the holder's live hold another HOLD_TTL from `now`, and commit.

    Returns:
        The hold, or None when this holder has no such live hold (an expired hold is not
        revived: its time may be taken; place a new one).
    """
    hold = _owned_hold(hold_id, holder)
    if hold is None or hold.expires_at <= now:
        db.session.rollback()
        return None
    renewed = db.session.execute(
        sa.update(Hold)
        .where(Hold.id == hold.id, Hold.expires_at > now)
        .values(expires_at=now + HOLD_TTL)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not renewed:
        return None
    hold.expires_at = now + HOLD_TTL
    return hold


def shorten_holds(hold_ids: list[str], until: datetime) -> int:
    """Let the holds end by `until` at the latest (their socket has gone), and commit.
    Returns how many were shortened."""
    if not hold_ids:
        return 0
    count = db.session.execute(
        sa.update(Hold)
        .where(Hold.id.in_(hold_ids), Hold.expires_at > until)
        .values(expires_at=until)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return count


def sweep_expired(now: datetime) -> list[Hold]:
    """Delete the holds expired by `now`, each expert's under their lock (bumping their
    schedule version), and commit.

    Returns:
        The holds deleted: the caller announces each released.
    """
    from .booking import _lock_expert_for_booking
    from .database import booking_transaction

    experts = db.session.scalars(
        sa.select(Hold.expert_id).where(Hold.expires_at <= now).distinct()
    ).all()
    db.session.rollback()
    swept: list[Hold] = []
    for expert_id in experts:
        with booking_transaction():
            _lock_expert_for_booking(expert_id)
            # Read again under the lock: a renewal or a booking may have come first.
            expired = db.session.scalars(
                sa.select(Hold)
                .where(Hold.expert_id == expert_id, Hold.expires_at <= now)
                .execution_options(populate_existing=True)
            ).all()
            if expired:
                db.session.execute(sa.delete(Hold).where(Hold.id.in_([h.id for h in expired])))
        swept.extend(expired)
    return swept
