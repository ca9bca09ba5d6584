"""Mails through a real local SMTP server (aiosmtpd), and reading their links: a pytest
plugin (see tests/conftest.py), so every test folder has the `smtp_inbox` and `inbox`
fixtures."""

from __future__ import annotations

import email
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.conftest import free_port


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10):
        """The mails to `address` once there are `count` (a live server sends in the
        background)."""
        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        mails = self.to(address)
        assert len(mails) >= count, f"{len(mails)} mails to {address}"
        return mails


def text_of(message) -> str:
    """The plain-text part of `message`: as received, or as built (the mail module builds
    with the email package's legacy classes, which lack get_body)."""
    if not hasattr(message, "get_body"):
        message = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    return message.get_body(preferencelist=("plain",)).get_content()


def link_in(message, path: str) -> str:
    """The path of the link in `message` that starts with `path` (e.g. /auth/reset/)."""
    match = re.search(re.escape(path) + r"[A-Za-z0-9_-]+", text_of(message))
    assert match, f"no {path} link in {text_of(message)!r}"
    return match.group(0)


@contextmanager
def smtp_server() -> Iterator[Inbox]:
    """A real SMTP server on a free port while the block runs; its Inbox has `.port`."""
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def smtp_inbox():
    """A real SMTP server on a free port, collecting what it receives."""
    with smtp_server() as inbox:
        yield inbox


@pytest.fixture
def inbox(app, smtp_inbox):
    """The test app sends its mail to `smtp_inbox`."""
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_inbox.port)
    return smtp_inbox
