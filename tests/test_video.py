"""The mock video providers' links: each provider's public shape, random per meeting."""

from __future__ import annotations

import re
from collections import Counter

from expertbook.video import _random_text, create_meeting


def test_links_have_each_providers_shape_and_differ():
    zoom = {create_meeting("zoom", "Call") for _ in range(200)}
    meet = {create_meeting("google_meet", "Call") for _ in range(200)}
    assert len(zoom) == 200 and len(meet) == 200
    assert all(re.fullmatch(r"https://zoom\.us/j/\d{11}\?pwd=[\w-]{22}", url) for url in zoom)
    meet_shape = r"https://meet\.google\.com/[a-z]{3}-[a-z]{4}-[a-z]{3}"
    assert all(re.fullmatch(meet_shape, url) for url in meet)


def test_random_text_uses_every_character_at_every_place():
    texts = [_random_text("abc", 4) for _ in range(3000)]
    assert all(len(text) == 4 and set(text) <= set("abc") for text in texts)
    for place in range(4):
        counts = Counter(text[place] for text in texts)
        assert set(counts) == set("abc")
        assert min(counts.values()) > 800  # about 1,000 each
