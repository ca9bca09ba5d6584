"""Where the app's own log lines go when it runs as a server (`python wsgi.py`) or a worker
(`flask worker`): stderr, at LOG_LEVEL (default INFO).

Without this Python keeps only warnings, so the one line per mail that a server without
MAIL_SERVER writes (`mail to=... subject=...`, the README's promise) never appeared."""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_stderr() -> None:
    logger = logging.getLogger("expertbook")
    level = logging.getLevelName(os.environ.get("LOG_LEVEL", "INFO").strip().upper())
    logger.setLevel(level if isinstance(level, int) else logging.INFO)
    # Flask gives the app's logger (also "expertbook") a stderr handler of its own when it
    # has none; one is enough.
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
