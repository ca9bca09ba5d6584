"""The profile form."""

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional, ValidationError

from ..templating import timezone_choices


class ProfileForm(FlaskForm):
    name = StringField("Display name", validators=[Optional(), Length(max=100)])
    timezone = SelectField("Time zone", choices=[])
    bio = TextAreaField("About you", validators=[Optional(), Length(max=2000)])

    def validate_name(self, field):
        if any(not ch.isprintable() for ch in field.data or ""):
            raise ValidationError("One line of text, without control characters.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # SelectField's own check refuses any value not in this list: an unknown zone.
        self.timezone.choices = timezone_choices()
