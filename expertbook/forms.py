"""Forms used by more than one blueprint."""

from flask_wtf import FlaskForm


class EmptyForm(FlaskForm):
    """A POST-only button (log out, become an expert, cancel): just the CSRF token."""
