"""The profile, password and two-factor forms."""

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..auth.forms import NewPasswordForm
from ..scheduling import canonical_zone
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
        # One spelling: a zone saved under an old name shows (and saves) as today's name.
        self.timezone.data = canonical_zone(self.timezone.data)
        # SelectField's own check refuses any value not in this list: an unknown zone.
        self.timezone.choices = timezone_choices(self.timezone.data)


class PasswordChangeForm(NewPasswordForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=256)]
    )
    password = PasswordField("New password", validators=[DataRequired(), Length(max=256)])


class EnableTwoFactorForm(FlaskForm):
    code = StringField("Code from the app", validators=[DataRequired(), Length(max=64)])


class PasswordCheckForm(FlaskForm):
    """A change to two-factor sign-in asks the password again: a session left open on a
    shared computer is not enough."""

    password = PasswordField("Your password", validators=[DataRequired(), Length(max=256)])
