"""API views."""

from flask import jsonify

from . import bp
from .auth import api_user


@bp.get("/ping")
def ping():
    """A trivial endpoint: the baseline the benchmarks compare against."""
    return jsonify(status="ok")


@bp.get("/me")
def me():
    """The caller's own account."""
    user = api_user()
    return jsonify(
        id=user.id,
        username=user.username,
        email=user.email,
        name=user.name,
        timezone=user.timezone,
        is_expert=user.is_expert,
    )
