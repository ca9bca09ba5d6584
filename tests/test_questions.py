"""Booking questions: the event type's list and the booker's answers (pure rules)."""

from __future__ import annotations

import pytest

from expertbook.booking import BookingInputError
from expertbook.errors import FieldError
from expertbook.questions import (
    MAX_QUESTIONS,
    answer_errors,
    check_answers,
    check_questions,
    form_answers,
    labelled_answers,
    slug_for,
)

QUESTIONS = [
    {"id": "company", "label": "Your company", "kind": "text", "required": True},
    {"id": "goals", "label": "What do you want to reach?", "kind": "long_text", "required": False},
    {
        "id": "level",
        "label": "Your level",
        "kind": "choice",
        "required": False,
        "choices": ["Beginner", "Advanced"],
    },
    {"id": "terms", "label": "I accept the terms", "kind": "checkbox", "required": True},
]


def test_questions_are_normalized():
    questions = check_questions(
        [
            {"label": "  Your company ", "kind": "text"},
            {"label": "Level", "kind": "choice", "required": True, "choices": [" A ", "B"]},
        ]
    )
    assert questions == [
        {"id": "your-company", "label": "Your company", "kind": "text", "required": False},
        {
            "id": "level",
            "label": "Level",
            "kind": "choice",
            "required": True,
            "choices": ["A", "B"],
        },
    ]


def test_none_and_empty_are_no_questions():
    assert check_questions(None) == []
    assert check_questions([]) == []


def test_given_ids_are_kept_and_generated_ones_avoid_them():
    questions = check_questions(
        [
            {"label": "Company", "kind": "text"},
            {"id": "company", "label": "Other", "kind": "text"},
            {"label": "Company", "kind": "text"},
        ]
    )
    assert [question["id"] for question in questions] == ["company-2", "company", "company-3"]


def test_generated_ids_fit_the_id_rule():
    assert slug_for("Ünïcode — façade?!") == "unicode-facade"
    assert slug_for("???") == "question"
    assert slug_for("x" * 300) == "x" * 40
    long_twice = check_questions([{"label": "y" * 200}, {"label": "y" * 200}])
    assert [len(question["id"]) for question in long_twice] == [40, 40]
    assert long_twice[0]["id"] != long_twice[1]["id"]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("not a list", "questions"),
        ({"label": "x"}, "questions"),
        ([{"label": f"Q{i}"} for i in range(MAX_QUESTIONS + 1)], "questions"),
        (["a string"], "questions.0"),
        ([{"label": ""}], "questions.0.label"),
        ([{"label": "   "}], "questions.0.label"),
        ([{"label": "x" * 201}], "questions.0.label"),
        ([{"label": "x" * 1_000_000}], "questions.0.label"),
        ([{"label": "bad\x00label"}], "questions.0.label"),
        ([{"label": "two\nlines"}], "questions.0.label"),
        ([{"label": 5}], "questions.0.label"),
        ([{"label": None}], "questions.0.label"),
        ([{"label": "x", "kind": "date"}], "questions.0.kind"),
        ([{"label": "x", "kind": ["text"]}], "questions.0.kind"),
        ([{"label": "x", "required": "yes"}], "questions.0.required"),
        ([{"label": "x", "required": 1}], "questions.0.required"),
        ([{"label": "x", "id": "Bad Id"}], "questions.0.id"),
        ([{"label": "x", "id": "x" * 41}], "questions.0.id"),
        ([{"label": "x", "id": 3}], "questions.0.id"),
        ([{"label": "x", "id": "a"}, {"label": "y", "id": "a"}], "questions.1.id"),
        ([{"label": "x", "colour": "red"}], "questions.0.colour"),
        ([{"label": "x", "kind": "choice"}], "questions.0.choices"),
        ([{"label": "x", "kind": "choice", "choices": []}], "questions.0.choices"),
        ([{"label": "x", "kind": "choice", "choices": "A\nB"}], "questions.0.choices"),
        ([{"label": "x", "kind": "choice", "choices": ["A", "A"]}], "questions.0.choices"),
        ([{"label": "x", "kind": "choice", "choices": ["A", " "]}], "questions.0.choices"),
        ([{"label": "x", "kind": "choice", "choices": ["A", 2]}], "questions.0.choices"),
        ([{"label": "x", "kind": "choice", "choices": ["x" * 101]}], "questions.0.choices"),
        (
            [{"label": "x", "kind": "choice", "choices": [str(i) for i in range(21)]}],
            "questions.0.choices",
        ),
        ([{"label": "x", "kind": "text", "choices": ["A"]}], "questions.0.choices"),
    ],
)
def test_bad_questions_name_their_field(value, field):
    with pytest.raises(FieldError) as raised:
        check_questions(value)
    assert raised.value.field == field
    assert raised.value.message


def test_ten_questions_are_allowed():
    questions = check_questions([{"label": f"Q{i}"} for i in range(MAX_QUESTIONS)])
    assert len(questions) == MAX_QUESTIONS
    assert len({question["id"] for question in questions}) == MAX_QUESTIONS


def test_answers_are_cleaned_and_only_answered_ones_kept():
    answers = check_answers(
        QUESTIONS,
        {"company": "  Acme ", "goals": "line one\r\nline two\x07", "terms": True},
    )
    assert answers == {"company": "Acme", "goals": "line one\nline two", "terms": True}


def test_none_is_no_answers():
    assert check_answers([], None) == {}
    optional = [dict(question, required=False) for question in QUESTIONS]
    assert check_answers(optional, None) == {}
    assert check_answers(optional, {"company": "", "level": "", "terms": False}) == {"terms": False}


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ("company=Acme", "answers"),
        (["Acme"], "answers"),
        ({"company": "Acme"}, "answers.terms"),
        ({"terms": True}, "answers.company"),
        ({"company": "   ", "terms": True}, "answers.company"),
        ({"company": "Acme", "terms": False}, "answers.terms"),
        ({"company": "Acme", "terms": "true"}, "answers.terms"),
        ({"company": "Acme", "terms": "on"}, "answers.terms"),
        ({"company": "Acme", "terms": 1}, "answers.terms"),
        ({"company": 5, "terms": True}, "answers.company"),
        ({"company": ["Acme"], "terms": True}, "answers.company"),
        ({"company": "x" * 501, "terms": True}, "answers.company"),
        ({"company": "x" * 10_000_000, "terms": True}, "answers.company"),
        ({"company": "Ac\x00me", "terms": True}, "answers.company"),
        ({"company": "two\nlines", "terms": True}, "answers.company"),
        ({"company": "Acme", "goals": "x" * 5001, "terms": True}, "answers.goals"),
        ({"company": "Acme", "level": "Expert", "terms": True}, "answers.level"),
        ({"company": "Acme", "level": "beginner", "terms": True}, "answers.level"),
        ({"company": "Acme", "level": True, "terms": True}, "answers.level"),
        ({"company": "Acme", "terms": True, "other": "x"}, "answers.other"),
        ({"company": "Acme", "terms": True, "Bad Key!": "x"}, "answers"),
        ({"company": "Acme", "terms": True, "x" * 10_000: "x"}, "answers"),
    ],
)
def test_bad_answers_name_their_field(answers, field):
    with pytest.raises(BookingInputError) as raised:
        check_answers(QUESTIONS, answers)
    assert raised.value.field == field
    assert raised.value.message


def test_a_choice_answer_is_matched_after_stripping():
    answers = check_answers(QUESTIONS, {"company": "A", "level": " Advanced ", "terms": True})
    assert answers["level"] == "Advanced"


def test_answer_errors_lists_every_wrong_answer():
    errors = answer_errors(QUESTIONS, {"level": "Expert"})
    assert set(errors) == {"company", "level", "terms"}
    assert answer_errors(QUESTIONS, {"company": "Acme", "terms": True}) == {}
    assert set(answer_errors(QUESTIONS, "junk")) == {"company", "terms"}


def test_form_answers_read_the_posted_fields():
    form = {
        "answer-company": "Acme",
        "answer-goals": "  ",
        "answer-level": "Beginner",
        "answer-unknown": "ignored",
    }
    assert form_answers(QUESTIONS, form) == {
        "company": "Acme",
        "level": "Beginner",
        "terms": False,
    }
    assert form_answers(QUESTIONS, {"answer-terms": "y"})["terms"] is True


def test_labelled_answers_in_question_order():
    answers = {"terms": True, "old": "kept", "company": "Acme", "level": "Beginner"}
    assert labelled_answers(QUESTIONS, answers) == [
        ("Your company", "Acme"),
        ("Your level", "Beginner"),
        ("I accept the terms", "Yes"),
        ("old", "kept"),
    ]
    assert labelled_answers(QUESTIONS, {"terms": False}) == [("I accept the terms", "No")]
    assert labelled_answers(QUESTIONS, None) == []
    assert labelled_answers([], {}) == []
