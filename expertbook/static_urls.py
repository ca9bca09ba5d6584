"""Static file URLs carry a short hash of the file's content (`/static/js/booking.js?v=...`).

Behind nginx the files are served from disk with a year's `immutable` cache header
(deploy/nginx/expertbook.conf): a changed file gets a new URL, so no browser keeps an old
script after an upgrade. Each process hashes a file once, on its first link to it.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Flask


def init_app(app: Flask) -> None:
    folder = Path(app.static_folder).resolve()

    @lru_cache(maxsize=1024)
    def version(filename: str) -> str | None:
        """The first 12 hex digits of the file's SHA-256; None for no such file under
        the static folder."""
        try:
            path = (folder / filename).resolve()
            path.relative_to(folder)
            return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        except (OSError, ValueError):
            return None

    @app.url_defaults
    def add_version(endpoint: str, values: dict) -> None:
        if endpoint != "static" or "v" in values:
            return
        if digest := version(str(values.get("filename", ""))):
            values["v"] = digest
