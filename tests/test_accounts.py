"""Usernames: none may shadow a path the app routes itself."""

import pytest

from expertbook.accounts import RESERVED_USERNAMES, USERNAME_RE, AccountError, normalize_username


def first_segments(app) -> set[str]:
    """The first path segment of every route that starts with a fixed one."""
    segments = set()
    for rule in app.url_map.iter_rules():
        first = rule.rule.lstrip("/").split("/", 1)[0]
        if first and "<" not in first:
            segments.add(first)
    return segments


def test_every_routed_first_segment_is_refused_as_a_username(app):
    # /dev/mail (development) among them: a user "dev" would shadow it, or be shadowed.
    usable = {s for s in first_segments(app) if USERNAME_RE.match(s)}
    assert "dev" in usable
    assert usable - RESERVED_USERNAMES == set()


@pytest.mark.parametrize("name", ["dev", "Dev", " dev "])
def test_dev_is_reserved(name):
    with pytest.raises(AccountError, match="reserved"):
        normalize_username(name)
