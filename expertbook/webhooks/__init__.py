"""Webhooks: experts' own endpoints hear about bookings, through the outbox.

- events.py: the events, and the outbox rows a booking change causes (`rows_for`)
- endpoints.py: add (secret shown once), list, remove, test, deliveries
- delivery.py: the outbox handler that POSTs one signed delivery

Importing the package registers the handler for kind "webhook" (the API imports it, so
every app process and `flask worker` has it).
"""

from . import delivery  # noqa: F401  (registers HANDLERS["webhook"])
from .events import EVENTS, PING, rows_for

__all__ = ["EVENTS", "PING", "rows_for"]
