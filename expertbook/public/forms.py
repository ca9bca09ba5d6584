"""The guest's booking form on the confirm step."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, StringField, TextAreaField

from ..booking import MAX_NAME, MAX_NOTES
from ..questions import answer_errors, form_answers

# The answers a draft keeps (the session cookie carries it: see public.routes' DRAFT), as
# JSON; longer ones are not kept.
MAX_DRAFT_ANSWERS = 1000


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

    # The event type's questions are asked as fields "answer-<question id>" (the
    # templates/public/_questions.html macro), read here rather than declared: each event
    # type asks its own.
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.answers: dict[str, Any] = {}
        self.answer_errors: dict[str, str] = {}

    def read_answers(self, questions: list[dict[str, Any]], formdata: Mapping[str, Any]) -> bool:
        """Read the posted answers and check each (questions.check_answers' rules), keeping
        every wrong one's message by question id. Returns whether all are right."""
        self.answers = form_answers(questions or [], formdata)
        self.answer_errors = answer_errors(questions or [], self.answers)
        return not self.answer_errors

    def drafted_answers(self, questions: list[dict[str, Any]], draft: Any) -> None:
        """Fill the answers from a kept draft (only known questions, text or true/false)."""
        ids = {question["id"] for question in questions or []}
        if isinstance(draft, dict):
            self.answers = {
                key: value
                for key, value in draft.items()
                if key in ids and isinstance(value, str | bool)
            }


def draft_answers(questions: list[dict[str, Any]], formdata: Mapping[str, Any]) -> dict | None:
    """The posted answers to keep in a draft, or None when they are too long to keep."""
    answers = form_answers(questions or [], formdata)
    if len(json.dumps(answers)) > MAX_DRAFT_ANSWERS:
        return None
    return answers
