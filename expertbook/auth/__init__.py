"""Accounts: sign-up, log-in, and how a request's user is found."""

from ..extensions import db, login_manager
from ..models import User


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The session stores "<id>:<session_version>"; an old version no longer signs in."""
    ident, _, version = (user_id or "").partition(":")
    if not ident.isdigit():
        return None
    user = db.session.get(User, int(ident))
    if user is None or str(user.session_version) != version:
        return None
    return user
