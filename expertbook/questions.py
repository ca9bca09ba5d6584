"""Booking questions: what an event type asks the booker, and the answers' rules.

An event type keeps its questions as a JSON list of
`{"id", "label", "kind", "required", "choices"?}`; a booking keeps its answers as
`{question id: value}`. The dashboard form, the JSON API and the booking pages all check
them here. Answers are for the expert (their views, mails, webhooks), never public pages.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from .errors import FieldError
from .text import multiline

KINDS = ("text", "long_text", "choice", "checkbox")
KIND_LABELS = {
    "text": "Short text",
    "long_text": "Long text",
    "choice": "Choice",
    "checkbox": "Checkbox",
}
MAX_QUESTIONS = 10
MAX_LABEL = 200
MAX_CHOICES = 20
MAX_CHOICE = 100
MAX_ID = 40
ID_RE = re.compile(r"^[a-z0-9_-]{1,40}$")
# Longest answer of each kind that takes text.
MAX_ANSWER = {"text": 500, "long_text": 5000, "choice": MAX_CHOICE}
QUESTION_KEYS = ("id", "label", "kind", "required", "choices")


def _question_error(index: int, key: str, message: str) -> FieldError:
    return FieldError(f"questions.{index}.{key}", message)


def _line(value: Any, max_length: int) -> str | None:
    """`value` stripped if it is one line of printable text of at most `max_length`
    characters, else None."""
    if not isinstance(value, str) or len(value) > 4 * max_length + 100:
        return None
    value = value.strip()
    if len(value) > max_length or not value.isprintable():
        return None
    return value


def slug_for(label: str) -> str:
    """A question id made from its label: lowercase ASCII letters, digits and hyphens."""
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_label.lower()).strip("-")
    return slug[:MAX_ID].strip("-") or "question"


def _unique(base: str, taken: set[str]) -> str:
    candidate, number = base, 2
    while candidate in taken:
        suffix = f"-{number}"
        candidate = base[: MAX_ID - len(suffix)] + suffix
        number += 1
    return candidate


def _choices(index: int, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _question_error(index, "choices", "A choice question needs a list of choices.")
    if len(value) > MAX_CHOICES:
        raise _question_error(index, "choices", f"At most {MAX_CHOICES} choices.")
    choices: list[str] = []
    for item in value:
        choice = _line(item, MAX_CHOICE)
        if not choice:
            raise _question_error(
                index,
                "choices",
                f"Each choice must be one line of text of 1 to {MAX_CHOICE} characters.",
            )
        if choice in choices:
            raise _question_error(index, "choices", f"The choice “{choice}” is given twice.")
        choices.append(choice)
    return choices


def _question(index: int, item: Any) -> dict[str, Any]:
    """One question checked and normalized; its id may still be missing ("")."""
    if not isinstance(item, Mapping):
        raise FieldError(f"questions.{index}", "Each question must be an object.")
    for key in item:
        if key not in QUESTION_KEYS:
            if isinstance(key, str) and ID_RE.match(key):
                raise _question_error(index, key, "Unknown field.")
            raise FieldError(f"questions.{index}", "A question has an unknown field.")
    question_id = item.get("id")
    if question_id is None or question_id == "":
        question_id = ""
    elif not isinstance(question_id, str) or not ID_RE.match(question_id):
        raise _question_error(
            index, "id", "The id must be 1 to 40 lowercase letters, digits, - or _."
        )
    label = _line(item.get("label"), MAX_LABEL)
    if not label:
        raise _question_error(
            index, "label", f"The question must be one line of 1 to {MAX_LABEL} characters."
        )
    kind = item.get("kind", "text")
    if not isinstance(kind, str) or kind not in KINDS:
        raise _question_error(index, "kind", "The kind must be one of: " + ", ".join(KINDS) + ".")
    required = item.get("required", False)
    if not isinstance(required, bool):
        raise _question_error(index, "required", "Must be true or false.")
    question: dict[str, Any] = {"id": question_id, "label": label, "kind": kind}
    question["required"] = required
    choices = item.get("choices")
    if kind == "choice":
        question["choices"] = _choices(index, choices)
    elif choices not in (None, []):
        raise _question_error(index, "choices", "Only a choice question has choices.")
    return question


def check_questions(value: Any) -> list[dict[str, Any]]:
    """Validate and normalize an event type's questions.

    Each question gets an id: its own (a short slug, unique in the list), or one made
    from its label when it has none (the dashboard form's new questions).

    Raises:
        FieldError: field "questions", or "questions.<index>.<key>" for one question.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError("questions", "Must be a list of questions (or [] for none).")
    if len(value) > MAX_QUESTIONS:
        raise FieldError("questions", f"At most {MAX_QUESTIONS} questions.")
    questions = [_question(index, item) for index, item in enumerate(value)]
    taken: set[str] = set()
    for index, question in enumerate(questions):
        if question["id"] in taken:
            raise _question_error(index, "id", "Another question has this id.")
        if question["id"]:
            taken.add(question["id"])
    for question in questions:
        if not question["id"]:
            question["id"] = _unique(slug_for(question["label"]), taken)
            taken.add(question["id"])
    return questions


def _input_error(field: str, message: str) -> FieldError:
    # booking.py imports this module: import its error class only when needed.
    from .booking import BookingInputError

    return BookingInputError(field, message)


def _answer(question: Mapping[str, Any], value: Any) -> Any:
    """One answer cleaned: None when it is empty. Raises BookingInputError."""
    field = f"answers.{question['id']}"
    kind = question["kind"]
    if value is None:
        return None
    if kind == "checkbox":
        if not isinstance(value, bool):
            raise _input_error(field, "Must be true or false.")
        return value
    if not isinstance(value, str):
        raise _input_error(field, "Must be text.")
    limit = MAX_ANSWER[kind]
    if len(value) > 4 * limit + 100:
        raise _input_error(field, f"At most {limit} characters.")
    if kind == "long_text":
        value = multiline(value)
    else:
        value = value.strip()
        if not value.isprintable():
            raise _input_error(field, "Must be one line of text, without control characters.")
    if len(value) > limit:
        raise _input_error(field, f"At most {limit} characters.")
    if kind == "choice" and value and value not in question.get("choices", ()):
        raise _input_error(field, "Please pick one of the choices.")
    return value or None


def check_answers(questions: list[dict[str, Any]], answers: Any) -> dict[str, Any]:
    """The booker's answers to `questions`, checked and cleaned.

    Args:
        questions: the event type's questions (as check_questions returned them).
        answers: {question id: value} as the booker sent it; None is no answers.

    Returns:
        {question id: value} for the answered questions only: text stripped, a checkbox
        as a bool (False kept when it was sent).

    Raises:
        BookingInputError: field "answers" (not an object, an unknown question) or
            "answers.<id>" (a wrong value, a required question left empty).
    """
    if answers is None:
        return {}
    if not isinstance(answers, Mapping):
        raise _input_error("answers", "Must be an object of question id to answer.")
    ids = {question["id"] for question in questions}
    for key in answers:
        if key not in ids:
            if isinstance(key, str) and ID_RE.match(key):
                raise _input_error(f"answers.{key}", "No such question.")
            raise _input_error("answers", "An answer is given to no such question.")
    cleaned: dict[str, Any] = {}
    for question in questions:
        value = _answer(question, answers.get(question["id"]))
        missing = value is None or (question["kind"] == "checkbox" and value is False)
        if question.get("required") and missing:
            message = (
                "Please tick this box."
                if question["kind"] == "checkbox"
                else "Please answer this question."
            )
            raise _input_error(f"answers.{question['id']}", message)
        if value is not None:
            cleaned[question["id"]] = value
    return cleaned


def answer_errors(questions: list[dict[str, Any]], answers: Any) -> dict[str, str]:
    """Every wrong answer's message by question id (a form shows them all at once)."""
    errors: dict[str, str] = {}
    if not isinstance(answers, Mapping):
        answers = {}
    for question in questions:
        own = {question["id"]: answers[question["id"]]} if question["id"] in answers else {}
        try:
            check_answers([question], own)
        except FieldError as error:
            errors[question["id"]] = error.message
    return errors


def form_answers(questions: list[dict[str, Any]], form: Mapping[str, Any]) -> dict[str, Any]:
    """The answers a booking form posted (fields "answer-<id>"), typed for check_answers:
    a checkbox is True when ticked, False otherwise; an empty field is left out."""
    answers: dict[str, Any] = {}
    for question in questions:
        name = f"answer-{question['id']}"
        if question["kind"] == "checkbox":
            answers[question["id"]] = name in form
        else:
            value = form.get(name)
            if isinstance(value, str) and value.strip():
                answers[question["id"]] = value
    return answers


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value)


def labelled_answers(
    questions: list[dict[str, Any]], answers: Mapping[str, Any] | None
) -> list[tuple[str, str]]:
    """(label, answer text) in question order, for the expert's views, mails and webhooks;
    a checkbox reads "Yes" or "No". Answers to questions removed since are shown under
    their id, last."""
    answers = answers or {}
    known = {question["id"] for question in questions or ()}
    shown = [
        (question["label"], _shown(answers[question["id"]]))
        for question in questions or ()
        if question["id"] in answers
    ]
    shown.extend((str(key), _shown(value)) for key, value in answers.items() if key not in known)
    return shown


def booking_answers(booking) -> list[tuple[str, str]]:
    """The booker's answers to `booking`'s questions, labelled (labelled_answers), for the
    expert's views, mails and webhooks."""
    return labelled_answers(booking.event_type.questions or [], booking.answers)
