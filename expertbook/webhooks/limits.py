"""How often an account may add webhooks and send test events: each makes the server send
requests to an address of the account's choosing. One budget per account, whether the
dashboard or the API is used."""

from __future__ import annotations

from flask import request
from flask_limiter.util import get_remote_address
from flask_login import current_user

from ..extensions import limiter

WEBHOOK_LIMIT = "30 per hour"


def account_key() -> str:
    """The caller's account (session or API token), else their address."""
    user_id = None
    if request.blueprint == "api":
        from ..api.auth import api_user  # the API imports this module
        from ..api.errors import ApiError

        try:
            user = api_user(required=False)
        except ApiError:  # the view refuses it in turn
            user = None
        user_id = user.id if user is not None else None
    elif current_user.is_authenticated:
        user_id = current_user.id
    return f"user:{user_id}" if user_id is not None else f"address:{get_remote_address()}"


webhook_add_limit = limiter.shared_limit(
    WEBHOOK_LIMIT, scope="webhook-add", key_func=account_key, methods=["POST"]
)
webhook_test_limit = limiter.shared_limit(WEBHOOK_LIMIT, scope="webhook-test", key_func=account_key)
