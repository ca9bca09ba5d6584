"""Pure (standard-library only) slot scheduling: working hours, time zones and free slots."""

from expertbook.scheduling.limits import full_days, limit_reached, local_day, week_of, within_limits
from expertbook.scheduling.slots import (
    Availability,
    Interval,
    SlotRules,
    busy_interval,
    day_window,
    format_hhmm,
    is_offered,
    offered_slots,
    parse_hhmm,
    validate_day_intervals,
    working_intervals,
)
from expertbook.scheduling.zones import (
    UnknownTimeZone,
    canonical_zone,
    canonical_zones,
    is_valid_timezone,
    iso_z,
    zone,
)

__all__ = [
    "Availability",
    "Interval",
    "SlotRules",
    "UnknownTimeZone",
    "busy_interval",
    "canonical_zone",
    "canonical_zones",
    "day_window",
    "format_hhmm",
    "full_days",
    "is_offered",
    "is_valid_timezone",
    "iso_z",
    "limit_reached",
    "local_day",
    "offered_slots",
    "parse_hhmm",
    "validate_day_intervals",
    "week_of",
    "within_limits",
    "working_intervals",
    "zone",
]
