"""The event type form. It only reads and types the input: the rules live in event_types."""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Optional

from ..event_types import DEFAULT_REMINDER_MINUTES, FIELDS, LOCATIONS

REQUIRED_NUMBER = "Enter a whole number."
WHOLE_NUMBER = re.compile(r"^-?[0-9]{1,9}$")


class MinutesListField(StringField):
    """Whole minutes typed as "1440, 60" (commas or spaces between), read as a list of ints;
    blank is the empty list. The range rules are event_types', in their words."""

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        pieces = [piece for piece in re.split(r"[\s,;]+", valuelist[0]) if piece]
        bad = next((piece for piece in pieces if not WHOLE_NUMBER.match(piece)), None)
        if bad is not None:
            self.data = None
            raise ValueError(f"“{bad[:20]}” is not a whole number of minutes.")
        self.data = [int(piece) for piece in pieces]

    def _value(self) -> str:
        if self.raw_data:  # what was typed, as typed
            return self.raw_data[0]
        return ", ".join(str(minutes) for minutes in self.data or [])


class EventTypeForm(FlaskForm):
    # Field names are the API's, so an EventTypeError's `field` names a field of this form.
    title = StringField("Title")
    slug = StringField("Link name (slug)")
    duration_minutes = IntegerField("Duration (minutes)", [InputRequired(REQUIRED_NUMBER)])
    description = TextAreaField("Description")
    # validate_choice off: an unknown location is refused by the shared rules, in their words.
    location = SelectField(
        "Location",
        choices=[SelectChoice(value, label) for value, label in LOCATIONS.items()],
        validate_choice=False,
    )
    buffer_before_minutes = IntegerField(
        "Buffer before (minutes)", [InputRequired(REQUIRED_NUMBER)], default=0
    )
    buffer_after_minutes = IntegerField(
        "Buffer after (minutes)", [InputRequired(REQUIRED_NUMBER)], default=0
    )
    min_notice_minutes = IntegerField(
        "Minimum notice (minutes)", [InputRequired(REQUIRED_NUMBER)], default=0
    )
    max_days_ahead = IntegerField(
        "Bookable up to (days ahead)", [InputRequired(REQUIRED_NUMBER)], default=60
    )
    slot_interval_minutes = IntegerField("Start times every (minutes)", [Optional()])
    active = BooleanField("Active: clients can book it", default=True)
    reminder_minutes = MinutesListField(
        "Reminders (minutes before, comma-separated)",
        default=lambda: list(DEFAULT_REMINDER_MINUTES),
    )

    def event_type_data(self) -> dict[str, Any]:
        """The submitted values, typed as `event_types.save_event_type` wants them."""
        data = {name: self[name].data for name in FIELDS}
        data["title"] = data["title"] or ""
        data["slug"] = data["slug"] or ""
        data["description"] = data["description"] or ""
        return data
