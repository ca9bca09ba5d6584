"""Time-zone helpers: safe IANA zone lookup and local wall-clock -> UTC conversion.

Wall-clock conversion follows one deliberate DST policy, shared by the whole package:

* a local time is interpreted with ``fold=0`` (PEP 495);
* a *nonexistent* local time (inside a spring-forward gap) therefore gets the UTC offset in
  force *before* the change, i.e. it is shifted forward by the gap: 01:30 Europe/London on
  2026-03-29 becomes 01:30Z = 02:30 BST;
* a *repeated* local time (autumn fall-back) is its FIRST occurrence: 01:30 Europe/London on
  2026-10-25 becomes 00:30Z (01:30 BST), not 01:30Z (01:30 GMT).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

__all__ = [
    "UTC",
    "UnknownTimeZone",
    "as_utc",
    "canonical_zone",
    "canonical_zones",
    "is_valid_timezone",
    "local_to_utc",
    "zone",
]

# Real IANA names are short ("America/Argentina/ComodRivadavia" is among the longest); the cap
# keeps hostile input away from the filesystem before ZoneInfo ever sees it.
_MAX_ZONE_NAME = 64
# Letters, digits, "_", "+", "-" in "/"-separated segments covers every IANA name
# ("Etc/GMT+5", "America/Port-au-Prince") while excluding "..", absolute paths and NUL bytes.
_ZONE_NAME_RE = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")


class UnknownTimeZone(ValueError):
    """Raised when a string is not a usable IANA time-zone name."""


@lru_cache(maxsize=1024)
def _load_zone(name: str) -> ZoneInfo:
    # Only validated names reach this cache, so it cannot be flooded with junk keys; failures
    # raise and are therefore never cached.
    return ZoneInfo(name)


def zone(name: str) -> ZoneInfo:
    """Return the ZoneInfo for an IANA zone name.

    Args:
        name: an IANA name such as "Europe/London".

    Returns:
        The (cached) ZoneInfo object.

    Raises:
        UnknownTimeZone: for anything that is not a known zone name (never another exception).
    """
    if not isinstance(name, str) or not name or len(name) > _MAX_ZONE_NAME:
        raise UnknownTimeZone(f"unknown time zone: {_preview(name)}")
    if _ZONE_NAME_RE.fullmatch(name) is None:
        raise UnknownTimeZone(f"unknown time zone: {_preview(name)}")
    try:
        return _load_zone(name)
    # ZoneInfo signals a bad key in several ways: ZoneInfoNotFoundError (a KeyError), ValueError
    # for a non-TZif file, OSError for directories; callers only want one exception type.
    except (KeyError, ValueError, OSError) as exc:
        raise UnknownTimeZone(f"unknown time zone: {_preview(name)}") from exc


def is_valid_timezone(name: str) -> bool:
    """Return True when `name` is a loadable IANA zone name."""
    try:
        zone(name)
    except UnknownTimeZone:
        return False
    return True


def _tzdata_text(name: str) -> str:
    return resources.files("tzdata.zoneinfo").joinpath(name).read_text(encoding="utf-8")


@cache
def canonical_zones() -> tuple[str, ...]:
    """The zone names people pick from: zone.tab's list (one per region of a country, with
    today's spellings such as Asia/Kolkata and Europe/Kyiv) and UTC, sorted."""
    names = {
        line.split("\t")[2]
        for line in _tzdata_text("zone.tab").splitlines()
        if line and not line.startswith("#")
    }
    return tuple(sorted(names | {"UTC"}))


@cache
def _renamed() -> dict[str, str]:
    # tzdata.zi's "L TARGET NAME" lines: NAME is another name of TARGET. Only links that
    # end in a listed zone count: tzdata also links zones it merged (Europe/Amsterdam to
    # Europe/Brussels), and those keep their own, listed name.
    listed = set(canonical_zones())
    links = {}
    for line in _tzdata_text("tzdata.zi").splitlines():
        if line.startswith("L "):
            _, target, name = line.split()
            links[name] = target
    renamed = {}
    for name, target in links.items():
        seen = 0
        while target in links and target not in listed and seen < 8:
            target, seen = links[target], seen + 1
        if name not in listed and target in listed:
            renamed[name] = target
    renamed.update({"Etc/UTC": "UTC", "Etc/UCT": "UTC", "UCT": "UTC", "Zulu": "UTC"})
    return renamed


def canonical_zone(name: str) -> str:
    """Today's spelling of a zone name: Asia/Calcutta (which browsers still report) is
    Asia/Kolkata, US/Pacific is America/Los_Angeles. Other names come back unchanged."""
    return _renamed().get(name, name) if isinstance(name, str) else name


def _preview(value: object) -> str:
    # Error messages may end up in logs or HTTP responses; never echo a huge string back.
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def local_to_utc(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """Convert local wall-clock `minute` (0..1440) of `day` in `tz` to an aware UTC datetime.

    1440 means the next local day's 00:00. Gaps and folds are resolved with fold=0 (see the
    module docstring).
    """
    # Build the naive wall time first: arithmetic on an aware datetime would also be wall-clock
    # arithmetic, but doing it naively makes the fold=0 choice explicit.
    naive = datetime.combine(day, time()) + timedelta(minutes=minute)
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def as_utc(value: datetime, what: str = "datetime") -> datetime:
    """Return `value` converted to UTC.

    Raises:
        ValueError: if `value` is naive (a naive time has no defined instant).
    """
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def iso_z(value: datetime) -> str:
    """An aware UTC datetime as ISO 8601 with `Z`, to the second (isoformat is about twice
    as fast as strftime, which counts for a month of slots)."""
    return value.isoformat()[:19] + "Z"
