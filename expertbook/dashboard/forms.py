"""The event type form. It only reads and types the input: the rules live in event_types."""

from __future__ import annotations

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

from ..event_types import FIELDS, LOCATIONS

REQUIRED_NUMBER = "Enter a whole number."


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

    def event_type_data(self) -> dict[str, Any]:
        """The submitted values, typed as `event_types.save_event_type` wants them."""
        data = {name: self[name].data for name in FIELDS}
        data["title"] = data["title"] or ""
        data["slug"] = data["slug"] or ""
        data["description"] = data["description"] or ""
        return data
