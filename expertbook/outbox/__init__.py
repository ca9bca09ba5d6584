"""Delivery that loses nothing: messages written with the change that causes them, delivered
by workers after the commit (mail, reminders, webhooks, calendar write-back)."""

from .models import OutboxMessage, WebhookEndpoint
from .queue import HANDLERS, DeliveryError, enqueue, handler, message_row

__all__ = [
    "HANDLERS",
    "DeliveryError",
    "OutboxMessage",
    "WebhookEndpoint",
    "enqueue",
    "handler",
    "message_row",
]
