"""Cancel and reschedule forms."""

from datetime import datetime

from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError


class CancelForm(FlaskForm):
    reason = TextAreaField("Reason (optional)", validators=[Optional(), Length(max=2000)])


class RescheduleForm(FlaskForm):
    start = HiddenField("New time", validators=[DataRequired()])

    def validate_start(self, field: Field):
        try:
            parsed = datetime.fromisoformat(field.data)
        except (TypeError, ValueError):
            raise ValidationError("Pick a time from the list.") from None
        if parsed.tzinfo is None:
            raise ValidationError("Pick a time from the list.")
        field.data = parsed


class DeclineForm(FlaskForm):
    """The expert's decline of a booking request, with a reason the booker is told."""

    reason = TextAreaField(
        "Reason (optional, sent to the booker)", validators=[Optional(), Length(max=2000)]
    )
