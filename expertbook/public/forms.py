"""The guest's booking form on the confirm step."""

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, StringField, TextAreaField

from ..booking import MAX_NAME, MAX_NOTES


class BookingForm(FlaskForm):
    # The rules themselves live in booking.check_request (one place for the form and the API);
    # the form only carries the values and the CSRF token.
    name = StringField("Your name", render_kw={"maxlength": MAX_NAME, "autocomplete": "name"})
    email = EmailField("Email", render_kw={"maxlength": 254, "autocomplete": "email"})
    notes = TextAreaField(
        "Notes (optional)",
        render_kw={
            "maxlength": MAX_NOTES,
            "rows": 4,
            "placeholder": "Anything that helps prepare the session",
        },
    )
    # A fresh random key per rendered form makes a double submit replay the first booking.
    idempotency_key = HiddenField()
