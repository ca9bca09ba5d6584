"""Webhook fixtures: a real receiver, endpoints made through the operations."""

from __future__ import annotations

import pytest

from expertbook.models import utcnow
from expertbook.webhooks.endpoints import add_endpoint
from expertbook.webhooks.events import EVENTS
from tests.webhooks.receiver import receiver  # noqa: F401  (a fixture)


@pytest.fixture(autouse=True)
def _app_context(app):
    """Every test here runs with the app (on SQLite) and its context pushed."""
    return app


@pytest.fixture
def private_ok(app):
    """The receiver listens on 127.0.0.1, which only ALLOW_PRIVATE_HOSTS lets through."""
    app.config["ALLOW_PRIVATE_HOSTS"] = True


@pytest.fixture
def make_endpoint(private_ok):
    """Factory: make_endpoint(expert, url, events=all) -> NewEndpoint (endpoint, secret)."""

    def make(expert, url, events=EVENTS):
        return add_endpoint(expert, url, list(events), now=utcnow())

    return make
