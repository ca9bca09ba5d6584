"""API views."""

from flask import jsonify

from . import bp


@bp.get("/ping")
def ping():
    """A trivial endpoint: the baseline the benchmarks compare against."""
    return jsonify(status="ok")
