"""Who is calling the API: a bearer token, or the browser session with a CSRF header."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app, g, request
from flask_login import current_user
from flask_wtf.csrf import ValidationError, validate_csrf

from ..extensions import db
from ..models import ApiToken, User, hash_token, utcnow
from .errors import ApiError

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _token_user(header: str) -> User:
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthorized", "Use 'Authorization: Bearer <token>'.")
    token = db.session.scalar(
        sa.select(ApiToken).where(
            ApiToken.token_hash == hash_token(secret.strip()), ApiToken.revoked_at.is_(None)
        )
    )
    if token is None:
        raise ApiError(401, "unauthorized", "Unknown or revoked token.")
    now = utcnow()
    # Written at most once a minute, and committed at once, so a read-only caller shows as
    # used too without a write on every request.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
        db.session.commit()
    return token.user


def api_user(*, required: bool = True) -> User | None:
    """The caller, from `Authorization: Bearer` or the session (which then needs the
    `X-CSRFToken` header on unsafe methods).

    Raises:
        ApiError: 401 for a bad token, or no caller when `required`; 400 for a bad CSRF token.
    """
    if "api_user" in g:
        return g.api_user
    header = request.headers.get("Authorization")
    user: User | None = None
    if header:
        user = _token_user(header)
    # Without a cookie nobody is signed in (the session and remember-me are cookies, and
    # there is no other loader): Flask-Login, which would build an anonymous user for it,
    # is not asked.
    elif request.cookies and current_user.is_authenticated:
        if request.method not in SAFE_METHODS:
            try:
                validate_csrf(request.headers.get("X-CSRFToken"))
            except ValidationError as error:
                raise ApiError(400, "csrf_failed", str(error)) from None
        user = current_user._get_current_object()
    if user is None and required:
        raise ApiError(401, "unauthorized", "Sign in or send a bearer token.")
    g.api_user = user
    return user


def refuse_foreign_origin() -> None:
    """Refuse an unauthenticated write (no bearer token, no session) that a page of another
    site sent: browsers name that page's origin in `Origin`, and without this check any
    website could make its visitors' browsers book in their name. Requests without `Origin`
    (curl, servers) pass; signed-in browsers are held by the CSRF header instead.

    Raises:
        ApiError: 403 `foreign_origin`.
    """
    origin = request.headers.get("Origin")
    if origin is None or request.method in SAFE_METHODS:
        return
    if "Authorization" in request.headers or current_user.is_authenticated:
        return
    base = urlsplit(current_app.config["BASE_URL"])
    ours = {f"{base.scheme}://{base.netloc}".lower(), request.host_url.rstrip("/").lower()}
    if origin.lower() not in ours:
        raise ApiError(403, "foreign_origin", "Requests from another site's pages are refused.")


def expert_api_user() -> User:
    """The caller, who must be an expert.

    Raises:
        ApiError: 401 without credentials, 403 when the caller is not an expert.
    """
    user = api_user()
    if not user.is_expert:
        raise ApiError(403, "not_an_expert", "Only experts have event types and availability.")
    return user
