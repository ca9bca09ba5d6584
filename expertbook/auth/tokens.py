"""Links mailed to a user: a password reset (one hour, once) and an address confirmation
(two days). Each holds a random secret of which only the SHA-256 is stored."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from ..extensions import db
from ..models import EmailToken, User, hash_token, new_token

LIFETIME = {EmailToken.RESET: timedelta(hours=1), EmailToken.CONFIRM: timedelta(days=2)}


def issue_email_token(user: User, purpose: str, now: datetime) -> str:
    """Add a token for `user` to the session (the caller commits) and return its secret,
    which only the mail gets. Tokens of the user that ran out or were used are dropped."""
    if user.id is not None:  # a user being created has none (and must not be flushed yet)
        db.session.execute(
            sa.delete(EmailToken).where(
                EmailToken.user_id == user.id,
                sa.or_(EmailToken.expires_at <= now, EmailToken.used_at.is_not(None)),
            )
        )
    secret = new_token()
    db.session.add(
        EmailToken(
            user=user,
            purpose=purpose,
            token_hash=hash_token(secret),
            email=user.email,
            created_at=now,
            expires_at=now + LIFETIME[purpose],
        )
    )
    return secret


def find_email_token(secret: str, purpose: str, now: datetime) -> EmailToken | None:
    """The unexpired token of `purpose` whose secret this is, still for its user's address;
    None for anything else (used tokens included: the caller decides what a second use
    means)."""
    if not secret or len(secret) > 128:
        return None
    token = db.session.scalar(
        sa.select(EmailToken).where(
            EmailToken.token_hash == hash_token(secret), EmailToken.purpose == purpose
        )
    )
    if token is None or token.expires_at <= now or token.email != token.user.email:
        return None
    return token


def confirm_email(token: EmailToken, now: datetime) -> User:
    """Mark the token's address confirmed (again is harmless) and return its user."""
    user = token.user
    token.used_at = token.used_at or now
    user.email_confirmed_at = user.email_confirmed_at or now
    return user
