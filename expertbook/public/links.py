"""What the booking page repeats per day and per slot, made once per page or per process: a
link with one query value set in, the day's slot links, the time zone menu. A round-the-clock
day has 96 slots, and url_for and a template filter per slot cost more than the rest of the
page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote_plus

from flask import url_for
from markupsafe import Markup, escape

from ..scheduling import Interval, iso_z
from ..templating import localtime, timezone_choices, zone_label

# What Werkzeug leaves unescaped in a query value (werkzeug.urls._urlencode).
QUERY_SAFE = "!$'()*,/:;?@"
# A query value no link holds (a NUL, refused in any path): where the value goes.
_MARK = "\x00"
_MARK_QUOTED = quote_plus(_MARK)


def query_link(endpoint: str, key: str, path: dict[str, Any], **query: Any) -> Callable[[str], str]:
    """url_for(endpoint, **path, key=value, **query) as a function of `value`: built once,
    the value then set in as url_for would quote it."""
    built = url_for(endpoint, **path, **{key: _MARK}, **query)
    head, mark, tail = built.partition(_MARK_QUOTED)
    if not mark or _MARK_QUOTED in tail:  # pragma: no cover - a route that moved the value
        return lambda value: url_for(endpoint, **path, **{key: value}, **query)
    return lambda value: f"{head}{quote_plus(value, safe=QUERY_SAFE)}{tail}"


@dataclass(frozen=True)
class SlotLink:
    """A slot in the day's list: its UTC start (Z), its local time, and the confirm step's
    link, or None when someone else holds it right now."""

    start: str
    label: str
    url: str | None


def slot_links(
    offered: list[Interval], held: list[Interval], tz: str, confirm: Callable[[str], str]
) -> list[SlotLink]:
    """The day's offered and held slots, by start, as the list shows them (times in `tz`,
    `confirm` the confirm step's link of a UTC start)."""
    links = []
    held_starts = {slot.start for slot in held}
    for slot in sorted(offered + held, key=lambda slot: slot.start):
        start = iso_z(slot.start)
        url = None if slot.start in held_starts else confirm(start)
        links.append(SlotLink(start, localtime(slot.start, tz, "%H:%M"), url))
    return links


@cache
def _zone_options() -> tuple[dict[str, str], str]:
    """Each menu zone's <option>, unselected, and all of them in the menu's order."""
    options = {
        name: f'<option value="{escape(name)}">{escape(zone_label(name))}</option>'
        for name in timezone_choices()
    }
    return options, "".join(options.values())


def zone_menu(tz: str) -> Markup:
    """The <option>s of the time zone menu (timezone_choices(tz)), `tz` selected."""
    options, menu = _zone_options()
    option = options.get(tz)
    if option is not None:
        return Markup(menu.replace(option, option.replace(">", " selected>", 1), 1))
    names = timezone_choices(tz)
    extra = "".join(
        f'<option value="{escape(name)}" selected>{escape(zone_label(name))}</option>'
        for name in names[len(options) :]
        if name == tz
    )
    return Markup(menu + extra)
