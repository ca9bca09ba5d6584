"""Password hashing with argon2id, run off the event loop when eventlet is active.

A hash costs tens of milliseconds of pure CPU in C; under eventlet that would stall every
green thread of the process (other requests, Socket.IO heartbeats), so it runs in eventlet's
native thread pool instead.
"""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# A real hash of a random password, checked when the account does not exist, so a log-in
# takes as long for an unknown user as for a wrong password.
_DUMMY_HASH = _hasher.hash("expertbook-dummy-password")


def _off_hub(fn, *args):
    try:
        from eventlet import patcher, tpool
    except ImportError:  # pragma: no cover - eventlet is a requirement
        return fn(*args)
    if patcher.is_monkey_patched("thread"):
        return tpool.execute(fn, *args)
    return fn(*args)


def hash_password(password: str) -> str:
    """Return an argon2id hash of `password`."""
    return _off_hub(_hasher.hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Return True when `password` matches; a missing hash still costs one verification."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return _off_hub(check)
