"""The event type form. It only reads and types the input: the rules live in event_types."""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields import Field
from wtforms.validators import InputRequired, Optional

from ..event_types import DEFAULT_REMINDER_MINUTES, FIELDS, LOCATIONS
from ..questions import KIND_LABELS, MAX_QUESTIONS

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


class LinesField(TextAreaField):
    """One item a line, read as the list of non-blank lines (stripped)."""

    def process_formdata(self, valuelist):
        if valuelist:
            self.data = [line.strip() for line in valuelist[0].splitlines() if line.strip()]

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return "\n".join(self.data) if isinstance(self.data, list) else ""


class QuestionForm(Form):
    """One row of the questions editor. A row left empty, or ticked "Remove", is no
    question; the rules (lengths, kinds, choices) are questions.check_questions'."""

    # The question's id, kept across edits so that earlier answers stay attached to it.
    id = HiddenField()
    label = StringField("Question")
    # validate_choice off: an unknown kind is refused by the shared rules, in their words.
    kind = SelectField(
        "Answer",
        choices=[SelectChoice(value, label) for value, label in KIND_LABELS.items()],
        default="text",
        validate_choice=False,
    )
    choices = LinesField("Choices, one per line")
    required = BooleanField("Required: the client must answer it")
    position = IntegerField("Position", [Optional()])
    remove = BooleanField("Remove this question")

    @property
    def filled(self) -> bool:
        """Whether this row holds a question (to save, or to show on its own)."""
        return bool((self.label.data or "").strip()) and not self.remove.data


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
    requires_confirmation = BooleanField("Requires my confirmation: requests wait for my answer")
    confirm_within_hours = IntegerField("Answer requests within (hours)", [Optional()])
    max_per_day = IntegerField("At most bookings a day", [Optional()])
    max_per_week = IntegerField("At most bookings a week", [Optional()])
    # A fixed set of rows (the event type's questions, then empty ones up to the maximum),
    # so that the editor works without JavaScript.
    questions = FieldList(FormField(QuestionForm), max_entries=MAX_QUESTIONS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        while len(self.questions) < MAX_QUESTIONS:
            self.questions.append_entry()
        for number, row in enumerate(self.questions, start=1):
            if row.form.position.data is None and not row.form.position.raw_data:
                row.form.position.data = number
        # The row of each question sent to the rules, by its index there.
        self._question_rows: list[QuestionForm] = []

    def question_data(self) -> list[dict[str, Any]]:
        """The filled rows as the rules want them: ordered by position (then by row), the
        choices kept only for a choice question, an empty id left for the rules to make."""
        rows = [row.form for row in self.questions if row.form.filled]
        rows.sort(key=lambda row: row.position.data if row.position.data is not None else 999)
        self._question_rows = rows
        questions = []
        for row in rows:
            question = {
                "label": row.label.data,
                "kind": row.kind.data,
                "required": bool(row.required.data),
            }
            if row.id.data:
                question["id"] = row.id.data
            if row.kind.data == "choice":
                question["choices"] = row.choices.data or []
            questions.append(question)
        return questions

    def _question_field(self, name: str) -> Field | None:
        """The row field a rule's "questions.<index>.<key>" names, if any."""
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != "questions" or not parts[1].isdigit():
            return None
        index = int(parts[1])
        if index >= len(self._question_rows):
            return None
        # The id is a hidden field: its refusal (a tampered form) shows on the question.
        key = "label" if parts[2] == "id" else parts[2]
        return self._question_rows[index]._fields.get(key)

    # The view puts a refusal on `form[error.field]` when `error.field in form`: a refusal
    # of one question ("questions.2.label") then shows on that question's row.
    def __contains__(self, name: str) -> bool:
        return self._question_field(name) is not None or super().__contains__(name)

    def __getitem__(self, name: str) -> Field:
        field = self._question_field(name)
        return field if field is not None else super().__getitem__(name)

    def event_type_data(self) -> dict[str, Any]:
        """The submitted values, typed as `event_types.save_event_type` wants them."""
        data = {name: self[name].data for name in FIELDS}
        data["title"] = data["title"] or ""
        data["slug"] = data["slug"] or ""
        data["description"] = data["description"] or ""
        data["requires_confirmation"] = bool(data["requires_confirmation"])
        data["questions"] = self.question_data()
        return data
