"""The slot engine fed from the database: one query for what keeps the expert busy in a
range (their bookings, confirmed or pending, and the busy times read from their own
calendars), live holds weighed beside it, and the bookings a limit per day or week counts
(the statements themselves: slot_queries.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .extensions import db
from .models import MAX_DAYS_AHEAD, EventType, Hold, User
from .schedule_cache import cached_hours
from .scheduling import (
    Availability,
    Interval,
    SlotRules,
    day_window,
    is_offered,
    offered_slots,
    within_limits,
    zone,
)

# The statements, and their parameters (booking_statements reads them from here too).
from .slot_queries import (
    BUSY,
    BUSY_EXCEPT,
    BUSY_HELD,
    BUSY_HELD_EXCEPT,
    COUNTED,
    COUNTED_EXCEPT,
    HELD,
    REACH,
    busy_params,
    count_params,
)
from .slot_queries import busy_query as busy_query
from .slot_queries import counted_query as counted_query

# HELD, soonest first and at most `limit` rows (built once, as the statements are).
HELD_SOONEST = HELD.order_by(Hold.start_at, Hold.id).limit(sa.bindparam("limit"))

if TYPE_CHECKING:
    from .booking_checks import Holder

# No event type offers a time farther ahead than this.
LONGEST_HORIZON = timedelta(days=MAX_DAYS_AHEAD)


def within_any_horizon(start: datetime, now: datetime, *, past: timedelta = timedelta()) -> bool:
    """False for a start no event type can offer: more than `past` ago, or beyond the longest
    horizon. Checked before the busy query, whose margins overflow datetime at the calendar's
    ends."""
    return now - past <= start < now + LONGEST_HORIZON


def rules_of(event_type: EventType) -> SlotRules:
    return SlotRules(
        duration_minutes=event_type.duration_minutes,
        interval_minutes=event_type.slot_interval_minutes,
        buffer_before_minutes=event_type.buffer_before_minutes,
        buffer_after_minutes=event_type.buffer_after_minutes,
        min_notice_minutes=event_type.min_notice_minutes,
        max_days_ahead=event_type.max_days_ahead,
    )


@dataclass(frozen=True)
class LiveHold:
    """A live hold as the slot engine weighs it (booking_checks.Holder.owns reads its token_hash and
    session_key)."""

    id: str
    event_type_id: int
    start: datetime
    end: datetime
    # Its time widened by its own event type's buffers, as a booking's busy interval.
    blocks: Interval
    expires_at: datetime
    token_hash: str
    session_key: str


def slot_span(event_type: EventType, start: datetime) -> Interval:
    """A slot of `event_type` at `start` widened by the type's buffers: what must be free."""
    end = start + timedelta(minutes=event_type.duration_minutes)
    return Interval(
        start - timedelta(minutes=event_type.buffer_before_minutes),
        end + timedelta(minutes=event_type.buffer_after_minutes),
    )


def holds_blocking(holds: list[LiveHold], event_type: EventType, start: datetime) -> list[LiveHold]:
    """Those of `holds` that keep `start` of `event_type` from being booked (their widened
    time overlaps the slot's widened time)."""
    span = slot_span(event_type, start)
    return [hold for hold in holds if hold.blocks.overlaps(span)]


def has_limits(event_type: EventType) -> bool:
    return event_type.max_per_day is not None or event_type.max_per_week is not None


def counted_starts(
    event_type_id: int, lower: datetime, upper: datetime, *, except_booking_id: int | None = None
) -> list[datetime]:
    """The starts of the event type's bookings (confirmed or pending) that share an
    expert-local day or week with a start in [lower, upper) (and a few more): what its
    limits count. `except_booking_id` leaves the booking being moved out."""
    params = {"event_type_id": event_type_id, **count_params(lower, upper)}
    query = COUNTED
    if except_booking_id is not None:
        query = COUNTED_EXCEPT
        params["except_booking_id"] = except_booking_id
    return list(db.session.scalars(query, params))


def live_holds(
    expert_id: int, lower: datetime, upper: datetime, now: datetime, *, limit: int | None = None
) -> list[LiveHold]:
    """The expert's holds live at `now` that can block a slot starting in [lower, upper).
    With `limit`, at most that many, soonest first (the booking checks weigh them all)."""
    params = {"expert_id": expert_id, "now": now, **busy_params(lower, upper)}
    query = HELD
    if limit is not None:
        query = HELD_SOONEST
        params["limit"] = limit
    minute = timedelta(minutes=1)
    return [
        LiveHold(
            id=id_,
            event_type_id=event_type_id,
            start=start,
            end=end,
            blocks=Interval(start - minute * before, end + minute * after),
            expires_at=expires_at,
            token_hash=token_hash,
            session_key=session_key,
        )  # fmt: skip
        for (
            id_,
            event_type_id,
            start,
            end,
            before,
            after,
            expires_at,
            token_hash,
            session_key,
        ) in db.session.execute(query, params)
    ]


def holds_not_ended(expert_id: int, now: datetime, *, limit: int) -> list[LiveHold]:
    """The expert's holds live at `now` whose time has not ended (end > now), soonest first,
    at most `limit`: what a booking page that (re)joins is told."""
    # live_holds' range for slots starting in [now + REACH, ...) keeps holds ending after
    # now (busy_params: ends_after = lower - REACH); none starts beyond the longest horizon
    # from when it was placed, so from now.
    return live_holds(expert_id, now + REACH, now + LONGEST_HORIZON, now, limit=limit)


def busy_intervals(
    expert_id: int, lower: datetime, upper: datetime, *, except_booking_id: int | None = None
) -> list[Interval]:
    """What can block a slot starting in [lower, upper), holds left out (live_holds weighs
    them by holder): the expert's confirmed and pending bookings, each widened by its own
    type's buffers, and their calendars' busy times; one query, whatever the range.
    `except_booking_id` leaves one booking out (the one being moved, which must not block
    its own new time)."""
    params = {"expert_id": expert_id, **busy_params(lower, upper)}
    query = BUSY
    if except_booking_id is not None:
        query = BUSY_EXCEPT
        params["except_booking_id"] = except_booking_id
    # Rows from the database are already aware UTC with end > start and buffers >= 0, so
    # the intervals are built directly (busy_interval's checks cost 2 ms per 1,000 rows).
    minutes = timedelta(minutes=1)
    return [
        Interval(
            start - minutes * before if before else start, end + minutes * after if after else end
        )
        for start, end, before, after in db.session.connection().execute(query, params)
    ]


@dataclass(frozen=True)
class HeldTime:
    """A live hold as offer weighs it (booking_checks.Holder.owns reads its token_hash and
    session_key)."""

    # The held slot's own time, and that time widened by its event type's buffers.
    time: Interval
    blocks: Interval
    expires_at: datetime
    token_hash: str
    session_key: str


def _busy_and_held(
    expert_id: int,
    lower: datetime,
    upper: datetime,
    now: datetime,
    except_booking_id: int | None,
) -> tuple[list[Interval], list[HeldTime]]:
    """busy_intervals, and the live holds around the range: one query."""
    params = {"expert_id": expert_id, "now": now, **busy_params(lower, upper)}
    query = BUSY_HELD
    if except_booking_id is not None:
        query = BUSY_HELD_EXCEPT
        params["except_booking_id"] = except_booking_id
    minutes = timedelta(minutes=1)
    busy: list[Interval] = []
    held: list[HeldTime] = []
    rows = db.session.connection().execute(query, params)
    for start, end, before, after, expires_at, token_hash, session_key in rows:
        interval = Interval(
            start - minutes * before if before else start, end + minutes * after if after else end
        )
        if expires_at is None:
            busy.append(interval)
        else:
            held.append(
                HeldTime(Interval(start, end), interval, expires_at, token_hash, session_key)
            )
    return busy, held


@dataclass(frozen=True)
class Offer:
    """What an event type offers on some days, and what live holds keep from being offered."""

    # The offered slots (nothing booked, held or over a limit blocks them).
    slots: list[Interval]
    # The slots that would be offered but for somebody's live hold of (part of) their very
    # time ("someone is booking"); those a hold keeps only by the buffers are in neither.
    held: list[Interval]
    # When the first of those holds expires (the answer may change then), None without holds.
    changes_at: datetime | None


def offer(
    event_type: EventType,
    *,
    day_from: date,
    day_to: date,
    viewer_tz: str,
    now: datetime,
    except_booking_id: int | None = None,
    extra_days_ahead: int = 0,
    holder: Holder | None = None,
) -> Offer:
    """The slots of `event_type` on the viewer's days day_from..day_to: offered, and held.

    Booked and busy times block, and live holds block like a booking of their own event
    type; expert-local days that reached `max_per_day`, and weeks that reached
    `max_per_week`, offer nothing. `holder`: the viewer, whose own holds block nothing for
    them (without it, the list is the same for every viewer: holds of anybody block).
    `extra_days_ahead` widens the booking horizon (for a cached answer that is trimmed to
    the exact horizon each time it is served).

    Raises:
        UnknownTimeZone: `viewer_tz` is not an IANA zone.
    """
    around = _around(
        event_type, day_from, day_to, viewer_tz, now, except_booking_id, extra_days_ahead, holder
    )
    if around is None:
        return Offer([], [], None)
    window, busy, held = around
    return _offered(
        event_type, busy, held, window, day_from, day_to, viewer_tz, now, except_booking_id,
        extra_days_ahead,
    )  # fmt: skip


def _around(
    event_type: EventType,
    day_from: date,
    day_to: date,
    viewer_tz: str,
    now: datetime,
    except_booking_id: int | None,
    extra_days_ahead: int,
    holder: Holder | None,
) -> tuple[Interval, list[Interval], list[HeldTime]] | None:
    """The viewer's days day_from..day_to as one window, what keeps the expert busy around
    it and the live holds that count for `holder` (one query); None when nothing can be
    offered there (past, beyond the horizon, or at the calendar's ends, where the busy
    query's margins would overflow datetime)."""
    try:
        window = day_window(day_from, day_to, viewer_tz)
    except (OverflowError, ValueError):  # the calendar's ends (or to < from): nothing offered
        return None
    horizon = timedelta(days=event_type.max_days_ahead + extra_days_ahead)
    if window.end <= now or window.start >= now + horizon:
        return None
    busy, held = _busy_and_held(
        event_type.expert_id, window.start, window.end, now, except_booking_id
    )
    if holder is not None:
        held = [hold for hold in held if not holder.owns(hold)]
    return window, busy, held


def _offered(
    event_type: EventType,
    busy: list[Interval],
    held: list[HeldTime],
    window: Interval,
    day_from: date,
    day_to: date,
    viewer_tz: str,
    now: datetime,
    except_booking_id: int | None = None,
    extra_days_ahead: int = 0,
) -> Offer:
    """offer's answer from what keeps the expert busy around `window` (the viewer's days
    day_from..day_to) and the live holds that count for the viewer."""
    rules = rules_of(event_type)
    if extra_days_ahead:
        rules = replace(rules, max_days_ahead=rules.max_days_ahead + extra_days_ahead)
    hours = cached_hours(event_type.expert)
    slots = offered_slots(
        hours, rules, busy, now=now, day_from=day_from, day_to=day_to, viewer_tz=viewer_tz
    )
    if has_limits(event_type):
        starts = counted_starts(
            event_type.id, window.start, window.end, except_booking_id=except_booking_id
        )
        slots = within_limits(
            slots, starts, hours.timezone, event_type.max_per_day, event_type.max_per_week
        )
    if not held:
        return Offer(slots, [], None)
    # Holds only take grid points away (offered_slots steps the same grid around any busy
    # span), so splitting the list by them is what offering with them as busy would give.
    # Shown held are the slots a hold overlaps itself, as the live page draws them; a slot
    # only a buffer keeps is simply not offered.
    before = timedelta(minutes=event_type.buffer_before_minutes)
    after = timedelta(minutes=event_type.buffer_after_minutes)
    offered: list[Interval] = []
    kept: list[Interval] = []
    for slot in slots:
        span = Interval(slot.start - before, slot.end + after)
        if not any(hold.blocks.overlaps(span) for hold in held):
            offered.append(slot)
        elif any(hold.time.overlaps(slot) for hold in held):
            kept.append(slot)
    return Offer(offered, kept, min(hold.expires_at for hold in held))


@dataclass(frozen=True)
class DaysOffer:
    """What a month calendar shows: the viewer's days with an offered slot, and one day's
    slots, offered and held (offer's for that day)."""

    days: set[date]
    day: date | None
    slots: list[Interval]
    held: list[Interval]


def offer_days(
    event_type: EventType,
    *,
    day_from: date,
    day_to: date,
    day: date | None,
    viewer_tz: str,
    now: datetime,
    holder: Holder | None = None,
) -> DaysOffer:
    """The viewer's days in day_from..day_to that offer a slot of `event_type`, and the
    slots of `day` (None: the first of those days), as offer gives them; one query. Only
    the first slot of each day is made, unless the event type has limits per day or week
    (they count by the expert's days and weeks: then the whole range is offered).

    Raises:
        UnknownTimeZone: `viewer_tz` is not an IANA zone.
    """
    around = _around(event_type, day_from, day_to, viewer_tz, now, None, 0, holder)
    if around is None:
        return DaysOffer(set(), day, [], [])
    window, busy, held = around
    viewer_zone = zone(viewer_tz)
    if has_limits(event_type):
        whole = _offered(event_type, busy, held, window, day_from, day_to, viewer_tz, now)
        days = {slot.start.astimezone(viewer_zone).date() for slot in whole.slots}
        day = min(days, default=None) if day is None else day
        return DaysOffer(
            days,
            day,
            [slot for slot in whole.slots if slot.start.astimezone(viewer_zone).date() == day],
            [slot for slot in whole.held if slot.start.astimezone(viewer_zone).date() == day],
        )
    # A live hold blocks like a booking of its own event type (see _offered).
    firsts = offered_slots(
        cached_hours(event_type.expert), rules_of(event_type), busy + [h.blocks for h in held],
        now=now, day_from=day_from, day_to=day_to, viewer_tz=viewer_tz, first_of_each_day=True,
    )  # fmt: skip
    days = {slot.start.astimezone(viewer_zone).date() for slot in firsts}
    day = min(days, default=None) if day is None else day
    if day is None or not day_from <= day <= day_to:
        return DaysOffer(days, day, [], [])
    one = _offered(event_type, busy, held, window, day, day, viewer_tz, now)
    return DaysOffer(days, day, one.slots, one.held)


def slots_for(
    event_type: EventType,
    *,
    day_from: date,
    day_to: date,
    viewer_tz: str,
    now: datetime,
    except_booking_id: int | None = None,
    extra_days_ahead: int = 0,
) -> list[Interval]:
    """The offered slots of `event_type` on the viewer's days day_from..day_to (offer's).

    Raises:
        UnknownTimeZone: `viewer_tz` is not an IANA zone.
    """
    return offer(
        event_type,
        day_from=day_from,
        day_to=day_to,
        viewer_tz=viewer_tz,
        now=now,
        except_booking_id=except_booking_id,
        extra_days_ahead=extra_days_ahead,
    ).slots


def is_bookable(
    event_type: EventType,
    start: datetime,
    now: datetime,
    *,
    except_booking_id: int | None = None,
    busy: list[Interval] | None = None,
    load_hours: Callable[[User], Availability] | None = None,
) -> bool:
    """True when `start` is an offered slot of `event_type` right now, holds and limits
    left out (the booking weighs them after, to say which refused it). `busy`: what keeps
    the expert busy around `start`, when the caller has read it already (at least what
    busy_intervals would give); `load_hours`: how to read the expert's hours in the
    caller's transaction when this process has not cached them (cached_hours)."""
    rules = rules_of(event_type)
    notice = timedelta(minutes=rules.min_notice_minutes)
    if not now + notice <= start < now + timedelta(days=rules.max_days_ahead):
        # Not offered whatever is booked; and near the calendar's ends the busy query's
        # margins would overflow datetime.
        return False
    end = start + timedelta(minutes=event_type.duration_minutes)
    if busy is None:
        busy = busy_intervals(event_type.expert_id, start, end, except_booking_id=except_booking_id)
    hours = cached_hours(event_type.expert, load_hours)
    return is_offered(hours, rules, busy, now=now, start=start)
