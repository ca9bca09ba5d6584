"""Two-factor sign-in: TOTP codes (RFC 6238, pyotp) and one-time recovery codes.

The secret is made at enrolment and shown as a QR code drawn here (segno), never by an
outside service; it signs in only once the user has typed a first code from it.
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import datetime

import pyotp
import segno
import sqlalchemy as sa

from ..errors import FieldError
from ..extensions import db
from ..models import RecoveryCode, User, hash_token

ISSUER = "ExpertBook"
RECOVERY_CODE_COUNT = 10
# Codes of the step before and after the current one are accepted too: phone clocks drift.
VALID_WINDOW = 1
_SEPARATORS = re.compile(r"[\s-]+")


class TwoFactorError(FieldError):
    """A code that does not enrol, or an enrolment in the wrong state."""


def start_enrolment(user: User) -> str:
    """The secret to show for enrolment: a new one unless enrolment has begun already.
    The caller commits."""
    if not user.totp_secret:
        user.totp_secret = pyotp.random_base32()
    return user.totp_secret


def qr_code(user: User) -> str:
    """The enrolment QR code as a `data:` SVG URL (the page's CSP allows `data:` images)."""
    uri = pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def enable_two_factor(user: User, code: str, now: datetime) -> list[str]:
    """Turn two-factor sign-in on with a first code from the enrolment secret; return the
    new recovery codes, to be shown this once. The caller commits.

    Raises:
        TwoFactorError: already on, no enrolment begun, or a wrong code.
    """
    if user.two_factor_enabled:
        raise TwoFactorError("code", "Two-factor sign-in is on already.")
    if not user.totp_secret:
        raise TwoFactorError("code", "Open the enrolment page first.")
    counter = _accepted_counter(user, code, now)
    if counter is None:
        raise TwoFactorError("code", "That code is not right; type the one your app shows now.")
    user.totp_last_counter = counter
    user.totp_enabled_at = now
    return new_recovery_codes(user)


def disable_two_factor(user: User) -> None:
    """Turn two-factor sign-in off and forget the secret and recovery codes (the CLI's
    reset-2fa too). The caller commits."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_counter = None
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with ten new ones and return them (only their
    hashes are kept). Each is 20 characters of 31 (99 random bits), in groups of five."""
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(20))
        codes.append("-".join(raw[i : i + 5] for i in range(0, 20, 5)))
        db.session.add(RecoveryCode(user_id=user.id, code_hash=hash_token(raw)))
    return codes


def passes_second_factor(user: User, code: str, now: datetime) -> bool:
    """True when `code` is a TOTP code not used before, or an unused recovery code (which
    is used up). The caller commits either way."""
    if not user.two_factor_enabled:
        return False
    counter = _accepted_counter(user, code, now)
    if counter is not None:
        user.totp_last_counter = counter
        return True
    typed = _SEPARATORS.sub("", code or "").lower()
    if len(typed) != 20:
        return False
    recovery = db.session.scalar(
        sa.select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == hash_token(typed),
            RecoveryCode.used_at.is_(None),
        )
    )
    if recovery is None:
        return False
    recovery.used_at = now
    return True


def recovery_codes_left(user: User) -> int:
    return db.session.scalar(
        sa.select(sa.func.count(RecoveryCode.id)).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    )


def _accepted_counter(user: User, code: str, now: datetime) -> int | None:
    """The time step whose code `code` is, if it is near now and later than the last one
    accepted (a code works once)."""
    typed = _SEPARATORS.sub("", code or "")
    if not (len(typed) == 6 and typed.isascii() and typed.isdigit()) or not user.totp_secret:
        return None
    totp = pyotp.TOTP(user.totp_secret)
    current = totp.timecode(now)
    last = user.totp_last_counter if user.totp_last_counter is not None else -1
    for counter in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if counter > last and hmac.compare_digest(totp.generate_otp(counter), typed):
            return counter
    return None
