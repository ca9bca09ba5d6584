"""Webhooks over the API (experts): list, add (the secret in the 201, never again), remove,
send a test event, and each endpoint's recent deliveries."""

from __future__ import annotations

from flask import jsonify, request

from ..cache_control import no_store
from ..errors import FieldError
from ..models import User, utcnow
from ..outbox.models import OutboxMessage, WebhookEndpoint
from ..scheduling import iso_z
from ..webhooks.endpoints import (
    MAX_DELIVERIES,
    add_endpoint,
    deliveries_of,
    endpoint_of,
    endpoints_of,
    remove_endpoint,
    send_test,
)
from ..webhooks.limits import webhook_add_limit, webhook_test_limit
from . import bp
from .auth import expert_api_user
from .errors import ApiError
from .inputs import invalid, json_object

CREATE_FIELDS = {"url", "events"}


def webhook_payload(endpoint: WebhookEndpoint) -> dict:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "created_at": iso_z(endpoint.created_at),
    }


def delivery_payload(message: OutboxMessage) -> dict:
    """One delivery; `id` is what the receiver got as X-ExpertBook-Delivery."""
    pending = message.status == OutboxMessage.PENDING
    return {
        "id": message.uid,
        "event": message.event,
        "status": message.status,
        "status_code": message.status_code,
        "attempts": message.attempts,
        "last_error": message.last_error or None,
        "created_at": iso_z(message.created_at),
        "delivered_at": iso_z(message.delivered_at) if message.delivered_at else None,
        "next_attempt_at": iso_z(message.due_at) if pending else None,
    }


def own_endpoint(expert: User, endpoint_id: int) -> WebhookEndpoint:
    endpoint = endpoint_of(expert.id, endpoint_id)
    if endpoint is None:
        raise ApiError(404, "not_found", "No such webhook.")
    return endpoint


@bp.get("/webhooks")
def list_webhooks():
    """The caller's webhook endpoints (their secrets are never shown again)."""
    expert = expert_api_user()
    return jsonify(webhooks=[webhook_payload(e) for e in endpoints_of(expert.id)])


@bp.post("/webhooks")
@webhook_add_limit
@no_store  # the answer carries the secret
def create_webhook():
    """Add an endpoint for some events; the 201 shows its signing secret, this once."""
    expert = expert_api_user()
    body = json_object()
    for name in body:
        if name not in CREATE_FIELDS:
            raise invalid(name, "Unknown field.", code="unknown_field")
    try:
        new = add_endpoint(expert, body.get("url"), body.get("events"), now=utcnow())
    except FieldError as error:
        raise invalid(error.field, error.message, error.code) from None
    return jsonify({**webhook_payload(new.endpoint), "secret": new.secret}), 201


@bp.get("/webhooks/<int:endpoint_id>")
def get_webhook(endpoint_id: int):
    """One endpoint."""
    return jsonify(webhook_payload(own_endpoint(expert_api_user(), endpoint_id)))


@bp.delete("/webhooks/<int:endpoint_id>")
def delete_webhook(endpoint_id: int):
    """Remove the endpoint; deliveries not yet made to it are dropped."""
    remove_endpoint(own_endpoint(expert_api_user(), endpoint_id))
    return "", 204


@bp.post("/webhooks/<int:endpoint_id>/test")
@webhook_test_limit
def test_webhook(endpoint_id: int):
    """Queue a `ping` delivery to the endpoint; 202 with the delivery, to follow it in
    the deliveries list."""
    endpoint = own_endpoint(expert_api_user(), endpoint_id)
    if request.get_data():
        json_object()  # a body, if any, must still be JSON
    return jsonify(delivery=delivery_payload(send_test(endpoint, now=utcnow()))), 202


@bp.get("/webhooks/<int:endpoint_id>/deliveries")
def webhook_deliveries(endpoint_id: int):
    """The endpoint's recent deliveries, newest first (`limit` 1-100, default 20)."""
    endpoint = own_endpoint(expert_api_user(), endpoint_id)
    limit = request.args.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_DELIVERIES:
        raise invalid("limit", f"A whole number from 1 to {MAX_DELIVERIES}.")
    deliveries = deliveries_of(endpoint.id, limit=int(limit))
    return jsonify(deliveries=[delivery_payload(m) for m in deliveries])
