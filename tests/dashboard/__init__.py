"""Helpers shared by the dashboard tests (fixtures stay in each module)."""

from __future__ import annotations

import re

from expertbook.models import User

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def sign_in_expert(make_user, auth, username: str = "ann", **fields) -> User:
    """A committed expert, signed in on the test client."""
    expert = make_user(username, expert=True, **fields)
    auth.login(username)
    return expert


def assert_csp_clean(html: str) -> None:
    """The strict CSP (`script-src 'self'`, `style-src 'self'`) would block these."""
    assert not INLINE_SCRIPT.search(html), "inline <script> on the page"
    assert "style=" not in html, "inline style attribute on the page"
    assert not re.search(r"<[^>]+\son[a-z]+=", html), "inline event handler on the page"
