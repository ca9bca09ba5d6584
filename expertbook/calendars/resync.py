"""A change of what calendars are read for makes the expert's connections due at once.

Busy times are read for a window that ends at the furthest any active event type books
ahead, with all-day and floating times read in the expert's zone. When an event type's
horizon grows (or one starts or stops taking bookings) or the expert's zone changes, the
next sync reads wider or afresh (reading._whole); this makes that sync due now instead of
in up to CALENDAR_SYNC_MINUTES, in the transaction of the change itself, whichever form,
API call or command made it.
"""

from __future__ import annotations

from itertools import chain

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from ..models import EventType, User, utcnow
from .models import CalendarConnection

_HORIZON_FIELDS = ("max_days_ahead", "active")


def _experts_to_resync(session: Session) -> set[int]:
    experts = set()
    for obj in chain(session.new, session.dirty):
        if isinstance(obj, EventType) and obj.expert_id is not None:
            state = inspect(obj)
            if state.pending or any(
                state.attrs[name].history.has_changes() for name in _HORIZON_FIELDS
            ):
                experts.add(obj.expert_id)
        elif (
            isinstance(obj, User)
            and obj.id is not None
            and inspect(obj).attrs.timezone.history.has_changes()
        ):
            experts.add(obj.id)
    return experts


@event.listens_for(Session, "after_flush")
def _resync_on_window_change(session: Session, _context) -> None:
    # After the flush, before its history is reset: what changed is still known here.
    experts = _experts_to_resync(session)
    if experts:
        session.connection().execute(
            sa.update(CalendarConnection.__table__)
            .where(CalendarConnection.__table__.c.expert_id.in_(sorted(experts)))
            .values(next_sync_at=utcnow())
        )
