"""Account operations shared by the sign-up form, the API and the maintainer CLI."""

from __future__ import annotations

import re

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError

from .errors import FieldError
from .extensions import db
from .models import ApiToken, EmailToken, User, hash_token, new_token, utcnow
from .passwords import hash_password
from .scheduling import is_valid_timezone

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,29}$")
# Every first path segment the app routes itself: a user with such a name would be unreachable
# at /<username>, or would shadow the route.
RESERVED_USERNAMES = frozenset(
    [
        "about",
        "account",
        "accounts",
        "admin",
        "api",
        "app",
        "auth",
        "billing",
        "book",
        "booking",
        "bookings",
        "calendar",
        "dashboard",
        "demo-admin",
        "dev",
        "docs",
        "event",
        "event-types",
        "events",
        "expert",
        "experts",
        "favicon.ico",
        "healthz",
        "help",
        "login",
        "logout",
        "me",
        "new",
        "null",
        "profile",
        "register",
        "root",
        "settings",
        "signup",
        "socket.io",
        "static",
        "support",
        "system",
        "undefined",
        "user",
        "users",
        "www",
    ]
)
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


class AccountError(FieldError):
    """Bad input for an account operation; `field` names the offending input."""


class EmailTaken(AccountError):
    """The address has an account. Sign-up does not say so on the page (it would tell a
    stranger who has an account here): it mails the address instead."""

    def __init__(self):
        super().__init__("email", EMAIL_TAKEN)


def normalize_username(raw: str) -> str:
    """Return the lower-cased username, or raise AccountError."""
    username = (raw or "").strip().lower()
    if not USERNAME_RE.match(username):
        raise AccountError(
            "username",
            "Use 2 to 30 lowercase letters, digits, '-' or '_', starting with a letter or digit.",
        )
    if username in RESERVED_USERNAMES:
        raise AccountError("username", f"'{username}' is reserved; please pick another.")
    return username


def normalize_email(raw: str) -> str:
    """Return the normalized, lower-cased email address, or raise AccountError."""
    try:
        result = validate_email((raw or "").strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise AccountError("email", str(error)) from None
    return result.normalized.lower()


def check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AccountError("password", f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError("password", f"Use at most {MAX_PASSWORD_LENGTH} characters.")


def find_user(login: str) -> User | None:
    """The user whose username or email is `login` (case-insensitive)."""
    login = (login or "").strip().lower()
    if not login or len(login) > 254:
        return None
    column = User.email if "@" in login else User.username
    return db.session.scalar(sa.select(User).where(column == login))


USERNAME_TAKEN = "That username is taken."
EMAIL_TAKEN = "An account with that email already exists."


def create_user(
    username: str,
    email: str,
    password: str,
    *,
    name: str = "",
    timezone: str = "UTC",
    expert: bool = False,
    confirmed: bool = False,
) -> User:
    """Validate and add a new user to the session (the caller commits). `confirmed`: the
    email address is known to be theirs (the maintainer made the user); sign-up leaves it
    unconfirmed until the mailed link is opened.

    Raises:
        EmailTaken: the address has an account.
        AccountError: invalid or taken username, invalid email, weak password, unknown zone.
    """
    username = normalize_username(username)
    email = normalize_email(email)
    check_password(password)
    if not is_valid_timezone(timezone):
        raise AccountError("timezone", "Unknown time zone.")
    # Hash before the first query: under eventlet the hash yields to other requests, and on
    # SQLite a read transaction that another request's write overtook cannot write any more
    # ("database is locked" at once, a 500).
    password_hash = hash_password(password)
    if db.session.scalar(sa.select(User.id).where(User.username == username)):
        raise AccountError("username", USERNAME_TAKEN)
    if db.session.scalar(sa.select(User.id).where(User.email == email)):
        raise EmailTaken()
    user = User(
        username=username,
        email=email,
        name=(name or "").strip()[:100],
        password_hash=password_hash,
        timezone=timezone,
        is_expert=expert,
        email_confirmed_at=utcnow() if confirmed else None,
    )
    db.session.add(user)
    return user


def commit_new_user() -> None:
    """Commit the user create_user added. A username or email that a concurrent request
    took after its check is refused the same way.

    Raises:
        EmailTaken: the email is taken; nothing is saved.
        AccountError: the username is taken; nothing is saved.
    """
    try:
        db.session.commit()
    except IntegrityError as error:
        db.session.rollback()
        # PostgreSQL names the constraint, SQLite the column; anything else is not a race.
        message = str(error.orig)
        if "uq_user_email" in message or "user.email" in message:
            raise EmailTaken() from None
        if "uq_user_username" in message or "user.username" in message:
            raise AccountError("username", USERNAME_TAKEN) from None
        raise


# Live (unrevoked) tokens a user may hold: enough for every script and machine, few enough
# that a stolen session cannot mint an unbounded supply of keys.
MAX_LIVE_TOKENS = 20


def set_password(user: User, password: str) -> None:
    """Give `user` a new password (the sign-up rules apply), end every session and
    remember-me cookie of theirs (a new session_version), and retire their reset links.
    The caller commits, and signs the current session in again if it should stay.

    Raises:
        AccountError: the password breaks a rule.
    """
    check_password(password)
    user.password_hash = hash_password(password)
    user.session_version += 1
    db.session.execute(
        sa.delete(EmailToken).where(
            EmailToken.user_id == user.id, EmailToken.purpose == EmailToken.RESET
        )
    )


def create_api_token(user: User, name: str = "") -> str:
    """Add a new API token for `user` and return its secret, which is never stored.

    Raises:
        AccountError: `user` already holds MAX_LIVE_TOKENS live tokens.
    """
    live = db.session.scalar(
        sa.select(sa.func.count(ApiToken.id)).where(
            ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
        )
    )
    if live >= MAX_LIVE_TOKENS:
        raise AccountError(
            "name",
            f"You already have {MAX_LIVE_TOKENS} active tokens, the most allowed; "
            "revoke one you no longer use first.",
        )
    secret = "eb_" + new_token()
    db.session.add(ApiToken(user=user, name=name[:100], token_hash=hash_token(secret)))
    return secret
