"""A booking as the API and the stored idempotent answers give it."""

from __future__ import annotations

from flask import current_app, url_for

from ..models import Booking
from ..scheduling import iso_z


def booking_links(booking: Booking, manage_token: str | None = None) -> dict[str, str]:
    """Absolute links; a guest's carry the secret token, the guest's only key."""
    base = current_app.config["BASE_URL"]
    query = f"?token={manage_token}" if manage_token else ""
    # The calendar file's route is the booking page's plus ".ics" (bookings/routes.py): one
    # URL built, not two (each a few per cent of a booking's CPU). The API's tests follow both.
    page = base + url_for("bookings.detail", uid=booking.uid)
    return {"ics_url": page + ".ics" + query, "manage_url": page + query}


def booking_payload(booking: Booking, manage_token: str | None = None) -> dict:
    """The booking as the API shows it. Its video link only once the expert has confirmed
    it: a request, pending or declined, gives "" (the key stays, for clients that read it)."""
    return {
        "uid": booking.uid,
        "event_type_id": booking.event_type_id,
        "start": iso_z(booking.start_at),
        "end": iso_z(booking.end_at),
        "status": booking.status,
        "name": booking.name,
        "email": booking.email,
        "video_url": booking.video_url if booking.is_confirmed else "",
        **booking_links(booking, manage_token),
    }
