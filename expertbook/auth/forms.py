"""Sign-up, log-in, second-factor and password-reset forms."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from ..accounts import AccountError, check_password, normalize_email, normalize_username
from ..scheduling import canonical_zone, canonical_zones, is_valid_timezone


class NewPasswordForm(FlaskForm):
    """A new password, typed twice; the sign-up rules (accounts.check_password)."""

    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    confirm = PasswordField(
        "Confirm password", validators=[DataRequired(), EqualTo("password", "Passwords differ.")]
    )

    def validate_password(self, field):
        try:
            check_password(field.data)
        except AccountError as error:
            raise ValidationError(error.message) from None


class RegisterForm(NewPasswordForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=30)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    # register.js picks the browser's zone; without script the newcomer picks it here.
    # validate_choice off: validate_timezone accepts any zone and stores today's name.
    timezone = SelectField(
        "Time zone",
        choices=[SelectChoice("", "Choose your time zone")]
        + [SelectChoice(name, name.replace("_", " ")) for name in canonical_zones()],
        validate_choice=False,
    )

    def validate_timezone(self, field):
        if not field.raw_data:  # not sent at all (a script, not the page): as before, UTC
            field.data = "UTC"
            return
        if not field.data:
            raise ValidationError("Choose your time zone: times are shown to you in it.")
        if not is_valid_timezone(field.data):
            raise ValidationError("Unknown time zone.")
        field.data = canonical_zone(field.data)

    def validate_username(self, field):
        try:
            field.data = normalize_username(field.data)
        except AccountError as error:
            raise ValidationError(error.message) from None

    def validate_email(self, field):
        try:
            field.data = normalize_email(field.data)
        except AccountError as error:
            raise ValidationError(error.message) from None


class LoginForm(FlaskForm):
    login = StringField("Email or username", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    remember = BooleanField("Remember me")


class SecondFactorForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[DataRequired(), Length(max=64)],
    )


class ResetRequestForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])

    def validate_email(self, field):
        try:
            field.data = normalize_email(field.data)
        except AccountError as error:
            raise ValidationError(error.message) from None


class ResetPasswordForm(NewPasswordForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=256)])
