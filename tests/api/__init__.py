"""Helpers shared by the API tests: bearer headers."""

from __future__ import annotations

from expertbook.accounts import create_api_token
from expertbook.extensions import db
from expertbook.models import User


def bearer(user: User) -> dict[str, str]:
    """Headers with a fresh, committed API token of `user`."""
    token = create_api_token(user)
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}
