"""Webhook endpoints: add (the secret shown once), list, remove, test, and their deliveries.

Operations take the expert and `now`, commit their own short transaction, and raise
FieldError for bad input; the API and the dashboard call the same ones.
"""

from __future__ import annotations

import secrets as random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..calendars import net, secrets
from ..errors import FieldError
from ..extensions import db
from ..models import User
from ..outbox.models import OutboxMessage, WebhookEndpoint
from ..outbox.queue import enqueue
from .events import EVENTS, ping_row

MAX_ENDPOINTS = 10  # per expert
MAX_URL = 2048
MAX_DELIVERIES = 100  # one answer lists at most this many
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # the signing secret in clear: shown this once, never stored so


def check_url(url: Any) -> str:
    """The address, stripped, if deliveries may go there. Raises FieldError("url").

    The same check as for calendars (a public address unless ALLOW_PRIVATE_HOSTS, the name
    resolved now); the delivery checks it again, on every connection."""
    if not isinstance(url, str) or not url.strip():
        raise FieldError("url", "Please give the address to send events to.")
    url = url.strip()
    if len(url) > MAX_URL:
        raise FieldError("url", f"At most {MAX_URL} characters.")
    if not url.lower().startswith(("https://", "http://")):
        raise FieldError("url", "The address must start with https:// (or http://).")
    try:
        return net.check_url(url, allow_private=allow_private())
    except net.RemoteError as error:
        raise FieldError("url", error.message) from None


def check_events(events: Any) -> list[str]:
    """The chosen events in their usual order. Raises FieldError("events")."""
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise FieldError("events", f"A list of events, from: {', '.join(EVENTS)}.")
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise FieldError(
            "events", f"Unknown event {unknown[0][:40]!r}; choose from: {', '.join(EVENTS)}."
        )
    if not events:
        raise FieldError("events", "Choose at least one event.")
    return [e for e in EVENTS if e in events]


def allow_private() -> bool:
    return bool(current_app.config["ALLOW_PRIVATE_HOSTS"])


def endpoints_of(expert_id: int) -> list[WebhookEndpoint]:
    return list(
        db.session.scalars(
            sa.select(WebhookEndpoint)
            .where(WebhookEndpoint.expert_id == expert_id)
            .order_by(WebhookEndpoint.id)
        )
    )


def endpoint_of(expert_id: int, endpoint_id: int) -> WebhookEndpoint | None:
    """The expert's endpoint, or None (also when it is another expert's)."""
    return db.session.scalar(
        sa.select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.expert_id == expert_id
        )
    )


def add_endpoint(expert: User, url: Any, events: Any, *, now: datetime) -> NewEndpoint:
    """Store a new endpoint with a fresh secret. Raises FieldError (url, events)."""
    events = check_events(events)
    url = check_url(url)
    count = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.expert_id == expert.id)
    )
    if count >= MAX_ENDPOINTS:
        raise FieldError("url", f"At most {MAX_ENDPOINTS} webhooks.", code="limit_reached")
    secret = SECRET_PREFIX + random.token_urlsafe(32)
    endpoint = WebhookEndpoint(
        expert_id=expert.id,
        url=url,
        events=events,
        secret=secrets.encrypt(secret),
        created_at=now,
    )
    db.session.add(endpoint)
    db.session.commit()
    return NewEndpoint(endpoint, secret)


def remove_endpoint(endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint; deliveries not yet made to it are dropped with it."""
    db.session.execute(sa.delete(OutboxMessage).where(OutboxMessage.endpoint_id == endpoint.id))
    db.session.execute(sa.delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
    db.session.commit()


def send_test(endpoint: WebhookEndpoint, *, now: datetime) -> OutboxMessage:
    """Queue a `ping` delivery to the endpoint (delivered like any other, retries included)."""
    row = ping_row(endpoint, now=now)
    enqueue([row])
    db.session.commit()
    return db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.uid == row["uid"]))


def deliveries_of(endpoint_id: int, *, limit: int = 20) -> list[OutboxMessage]:
    """The endpoint's deliveries, newest first, at most `limit` (one indexed query)."""
    return list(
        db.session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.endpoint_id == endpoint_id)
            .order_by(OutboxMessage.id.desc())
            .limit(min(limit, MAX_DELIVERIES))
        )
    )


def recent_deliveries(endpoint_ids: list[int], *, per_endpoint: int) -> dict[int, list]:
    """The newest `per_endpoint` deliveries of each endpoint, by endpoint id (for a page
    listing all of an expert's endpoints: one query per endpoint, at most MAX_ENDPOINTS)."""
    return {i: deliveries_of(i, limit=per_endpoint) for i in endpoint_ids}
