"""Sign-up, log-in, second-factor and password-reset forms."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from ..accounts import AccountError, check_password, normalize_email, normalize_username


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
