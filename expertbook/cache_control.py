"""Answers that carry a secret (a new API token, the feed address, a guest's manage link)
must not be kept by the browser's cache or a shared proxy: `Cache-Control: no-store`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import make_response


def no_store(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark every answer of `view` `Cache-Control: no-store` (errors raised in it are
    rendered elsewhere and carry no secret)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        response = make_response(view(*args, **kwargs))
        response.headers["Cache-Control"] = "no-store"
        return response

    return wrapper
