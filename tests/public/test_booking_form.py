"""The confirm step and the booking form, end to end without JavaScript."""

import re
from datetime import timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from expertbook.availability import set_availability
from expertbook.extensions import db, socketio
from expertbook.models import Booking
from tests.public import (
    ACTION_RE,
    CSRF_RE,
    KEY_RE,
    london,
    london_expert,
    next_week,
    slots_on,
    zulu,
)

NY = "America/New_York"
GONE = "That time is no longer available — pick another."
TAKEN = "Sorry, that time was just taken by someone else. Your details are kept: pick another time."


@pytest.fixture
def intro(make_user, make_event_type):
    return london_expert(make_user, make_event_type)


def bookings() -> list[Booking]:
    return list(db.session.scalars(sa.select(Booking).order_by(Booking.id)))


def open_form(client, path: str) -> dict:
    """GET the confirm page at `path`; its form's action, CSRF token and idempotency key."""
    response = client.get(path)
    assert response.status_code == 200, response.headers.get("Location")
    page = response.text
    return {
        "page": page,
        "action": ACTION_RE.search(page).group(1).replace("&amp;", "&"),
        "csrf_token": CSRF_RE.search(page).group(1),
        "idempotency_key": KEY_RE.search(page).group(1),
    }


def first_slot_link(client, tz: str = NY, day=None) -> tuple[str, str]:
    """(data-start, href) of the first slot on the booking page for `day`."""
    page = client.get(f"/ann/intro?date={day or next_week()}&tz={tz}").text
    start, href, _ = slots_on(page)[0]
    return start, href


def submit(client, form: dict, **fields):
    data = {
        "csrf_token": form["csrf_token"],
        "idempotency_key": form["idempotency_key"],
        "name": "Grace Guest",
        "email": "grace@example.com",
        "notes": "",
        **fields,
    }
    return client.post(form["action"], data=data)


def book_first_slot(client) -> tuple[str, str, object]:
    start, href = first_slot_link(client)
    form = open_form(client, href)
    return start, href, submit(client, form)


def test_no_js_flow_books_and_redirects_to_the_manage_link(client, intro):
    start, href = first_slot_link(client)
    assert href == f"/ann/intro/book?start={start}&tz={NY}"
    form = open_form(client, href)
    assert len(form["idempotency_key"]) >= 20
    # The chosen time in the viewer's zone and in the expert's.
    instant = london(next_week(), 9)
    assert "(America/New York)" in form["page"] and "(Europe/London)" in form["page"]
    assert instant.strftime("%H:%M") + " – " in form["page"]  # 09:00 London
    response = submit(client, form, notes="About the launch")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert re.fullmatch(r"/bookings/[0-9a-f]{24}\?token=[\w-]+&tz=America%2FNew_York", location)
    (booking,) = bookings()
    assert response.headers["Location"].startswith(f"/bookings/{booking.uid}?token=")
    assert zulu(booking.start_at) == start == zulu(instant)
    assert booking.end_at - booking.start_at == timedelta(minutes=30)
    assert (booking.name, booking.email, booking.notes) == (
        "Grace Guest",
        "grace@example.com",
        "About the launch",
    )
    assert booking.client_id is None


def test_the_booked_slot_is_gone_from_the_page(client, intro):
    start, _, response = book_first_slot(client)
    assert response.status_code == 302
    page = client.get(f"/ann/intro?date={next_week()}&tz={NY}").text
    assert start not in [s for s, _, _ in slots_on(page)]
    assert len(slots_on(page)) == 5


def test_posting_a_taken_slot_sends_back_to_that_day_with_a_flash(client, intro):
    start, href = first_slot_link(client)
    late = open_form(client, href)  # opened before the other guest books
    assert submit(client, open_form(client, href)).status_code == 302
    response = submit(client, late, name="Late Larry", email="larry@example.com")
    assert response.status_code == 302
    day = next_week()
    assert response.headers["Location"] == f"/ann/intro?date={day}&tz={NY}"
    page = client.get(response.headers["Location"]).text
    assert TAKEN in page and 'class="flash flash-error"' in page
    assert start not in [s for s, _, _ in slots_on(page)]
    assert len(bookings()) == 1


def test_double_submit_with_the_same_key_books_once(client, intro):
    _, href = first_slot_link(client)
    form = open_form(client, href)
    first, second = submit(client, form), submit(client, form)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert len(bookings()) == 1


def test_each_rendered_form_gets_a_fresh_key(client, intro):
    _, href = first_slot_link(client)
    assert open_form(client, href)["idempotency_key"] != open_form(client, href)["idempotency_key"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": ""}, "Please give your name."),
        ({"name": "   "}, "Please give your name."),
        ({"name": "n" * 101}, "At most 100 characters."),
        ({"email": "not-an-email"}, "email"),
        ({"email": ""}, "email"),
        ({"notes": "x" * 2001}, "At most 2000 characters."),
    ],
)
def test_bad_input_shows_the_error_on_its_field_and_books_nothing(client, intro, fields, message):
    _, href = first_slot_link(client)
    form = open_form(client, href)
    response = submit(client, form, **{"name": "Grace Guest", **fields})
    assert response.status_code == 200
    page = response.text
    field = next(iter(fields))
    error = re.search(rf'<div id="{field}-error"><p class="field-error">([^<]+)</p>', page)
    assert error and message.lower() in error.group(1).lower()
    assert bookings() == []
    # Values are kept, and so is the key (nothing was booked under it).
    if field != "name":
        assert 'value="Grace Guest"' in page
    assert KEY_RE.search(page).group(1) == form["idempotency_key"]


def test_a_bad_idempotency_key_is_a_form_error(client, intro):
    _, href = first_slot_link(client)
    form = open_form(client, href)
    response = submit(client, form, idempotency_key="k" * 300)
    assert response.status_code == 200
    assert "At most 255 printable characters." in response.text
    assert bookings() == []


def test_post_without_csrf_token_is_refused(client, intro):
    _, href = first_slot_link(client)
    form = open_form(client, href)
    response = submit(client, form, csrf_token="")
    assert response.status_code == 400
    assert bookings() == []


@pytest.mark.parametrize(
    "start",
    [
        "garbage",
        "2026-12-01T09:00:00",  # naive
        "9" * 200,
        "",
        "9999-12-31T23:59:00Z",
        "0001-01-01T00:00:00+05:00",
        "2026-12-01T09:00:00+99:00",
    ],
)
def test_unparseable_start_goes_back_to_the_booking_page(client, intro, start):
    response = client.get(f"/ann/intro/book?start={quote(start)}&tz={NY}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/ann/intro?tz={NY}"
    assert GONE in client.get(response.headers["Location"]).text


@pytest.mark.parametrize("minutes", [10, -60 * 24 * 30, 60 * 24 * 365])
def test_a_time_that_is_not_offered_goes_back_to_its_day(client, intro, minutes):
    start = london(next_week(), 9) + timedelta(minutes=minutes)
    response = client.get(f"/ann/intro/book?start={zulu(start)}&tz={NY}")
    assert response.status_code == 302
    day = start.astimezone(ZoneInfo(NY)).date()
    assert response.headers["Location"] == f"/ann/intro?date={day}&tz={NY}"
    assert GONE in client.get(response.headers["Location"]).text


def test_post_of_a_time_not_offered_books_nothing(client, intro):
    _, href = first_slot_link(client)
    form = open_form(client, href)
    form["action"] = form["action"].replace("T09:00:00Z", "T09:10:00Z")
    response = submit(client, form)
    assert response.status_code == 302 and "/ann/intro?date=" in response.headers["Location"]
    assert bookings() == []


def test_start_with_an_offset_is_accepted(client, intro):
    start = london(next_week(), 9).astimezone(ZoneInfo(NY))
    response = client.get(f"/ann/intro/book?start={quote(start.isoformat())}&tz={NY}")
    assert response.status_code == 200


def test_signed_in_client_is_prefilled_and_owns_the_booking(client, auth, intro, make_user):
    carl = make_user("carl", name="Carl Client", timezone=NY)
    auth.login("carl")
    page = client.get(f"/ann/intro?date={next_week()}").text  # carl's zone by default
    start, href, _ = slots_on(page)[0]
    assert href.endswith(f"&tz={NY}")
    form = open_form(client, href)
    assert 'value="Carl Client"' in form["page"] and 'value="carl@example.com"' in form["page"]
    response = client.post(
        form["action"],
        data={
            "csrf_token": form["csrf_token"],
            "idempotency_key": form["idempotency_key"],
            "name": "Carl Client",
            "email": "carl@example.com",
        },
    )
    assert response.status_code == 302
    (booking,) = bookings()
    assert booking.client_id == carl.id
    assert zulu(booking.start_at) == start


def test_booking_announces_slot_taken_to_the_room(app, client, intro):
    socket = socketio.test_client(app, flask_test_client=client)
    socket.emit("join", {"event_type_id": intro.id})
    socket.get_received()
    start, _, response = book_first_slot(client)
    assert response.status_code == 302
    events = [e for e in socket.get_received() if e["name"] == "slot_taken"]
    assert events == [
        {
            "name": "slot_taken",
            "args": [
                {"event_type_id": intro.id, "start": start, "end": zulu(london(next_week(), 9, 30))}
            ],
            "namespace": "/",
        }
    ]
    socket.disconnect()


def test_a_replayed_submit_announces_nothing_more(app, client, intro):
    _, href = first_slot_link(client)
    form = open_form(client, href)
    submit(client, form)
    socket = socketio.test_client(app, flask_test_client=client)
    socket.emit("join", {"event_type_id": intro.id})
    socket.get_received()
    assert submit(client, form).status_code == 302
    assert [e for e in socket.get_received() if e["name"] == "slot_taken"] == []
    socket.disconnect()


def test_a_guest_keeps_the_zone_they_booked_in(client, intro):
    """A guest has no profile zone: the manage link (without ?tz=) and the mail show the
    zone they picked the time in, not the expert's."""
    from expertbook.booking_mail import booking_mail
    from tests.mail_inbox import text_of

    start, href = first_slot_link(client, tz="Asia/Kolkata")
    response = submit(client, open_form(client, href))
    (booking,) = bookings()
    assert booking.timezone == "Asia/Kolkata"
    manage = response.headers["Location"].split("&tz=")[0]
    page = client.get(manage).text
    assert "Asia/Kolkata" in page and "Europe/London" not in page
    guest = booking_mail(booking, "booked", "client", manage_url=manage, uid="a")
    expert = booking_mail(booking, "booked", "expert", uid="b")
    assert "(Asia/Kolkata)" in text_of(guest)
    assert "(Europe/London)" in text_of(expert)


def test_a_just_taken_answer_keeps_what_the_guest_typed(client, intro):
    """Issue 16, finding 4: the next form holds the name, email and notes again."""
    _, href = first_slot_link(client)
    late = open_form(client, href)
    assert submit(client, open_form(client, href)).status_code == 302
    submit(client, late, name="Late Larry", email="larry@example.com", notes="About COBOL")
    _, other = first_slot_link(client)
    page = open_form(client, other)["page"]
    assert 'value="Late Larry"' in page and 'value="larry@example.com"' in page
    assert "About COBOL</textarea>" in page


def test_a_switched_off_type_keeps_the_form_and_says_so(client, intro, make_event_type):
    """Issue 16, findings 4 and 5: not a bare 404, and the details survive."""
    make_event_type(intro.expert, slug="second", title="Second opinion")
    _, href = first_slot_link(client)
    form = open_form(client, href)
    intro.active = False
    db.session.commit()
    response = submit(client, form, name="Paused Pat", email="pat@example.com")
    assert response.status_code == 404
    assert "is not taking bookings right now" in response.text
    assert 'href="/ann/second"' in response.text  # the expert's other types
    intro.active = True
    db.session.commit()
    _, href = first_slot_link(client)
    assert 'value="Paused Pat"' in open_form(client, href)["page"]
    assert bookings() == []


def test_every_faulty_field_is_flagged_at_once(client, intro):
    """Issue 16, finding 7: an empty name and email: both are flagged."""
    _, href = first_slot_link(client)
    response = submit(client, open_form(client, href), name="", email="")
    assert response.status_code == 200
    assert 'id="name-error"' in response.text and 'id="email-error"' in response.text
    assert bookings() == []


def test_going_back_to_a_time_you_booked_says_so(client, intro):
    """Issue 16, finding 2: not "no longer available", but "you booked it", with its link."""
    _, href = first_slot_link(client)
    booked = submit(client, open_form(client, href))
    response = client.get(href)
    assert response.status_code == 200
    assert "You have booked this time" in response.text
    manage = booked.headers["Location"].replace("&", "&amp;")
    assert f'href="{manage}"' in response.text


def test_an_expert_cannot_book_their_own_event_type(client, auth, intro):
    """Issue 16, finding 16."""
    auth.login("ann")
    _, href = first_slot_link(client)
    page = client.get(href).text
    assert "This is your own event type" in page and "Confirm booking" not in page
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post(
        href, data={"csrf_token": csrf, "name": "Ann", "email": "ann@example.com"}
    )
    assert "This is your own event type" in response.text
    assert bookings() == []


@pytest.mark.parametrize("start", ["9999-12-31T23:00:00Z", "0001-01-01T00:30:00Z"])
def test_a_post_at_the_calendars_ends_books_nothing(client, intro, start):
    _, href = first_slot_link(client)
    form = open_form(client, href)
    form["action"] = re.sub(r"start=[^&]+", f"start={quote(start)}", form["action"])
    response = submit(client, form)
    assert response.status_code == 302 and response.headers["Location"].startswith("/ann/intro")
    assert bookings() == []


def lose_a_race(client, **fields):
    """Submit a form for the first slot after another guest took it: the answer."""
    _, href = first_slot_link(client)
    late = open_form(client, href)
    assert submit(client, open_form(client, href)).status_code == 302
    return submit(client, late, **fields)


def field_values(page: str) -> tuple[str, str, str]:
    """The booking form's name, email and notes as the page shows them."""
    name = re.search(r'name="name"[^>]*value="([^"]*)"', page).group(1)
    email = re.search(r'name="email"[^>]*value="([^"]*)"', page).group(1)
    notes = re.search(r'<textarea[^>]*name="notes"[^>]*>\s*([^<]*)</textarea>', page).group(1)
    return name, email, notes.strip()


def test_a_just_taken_answer_keeps_the_details_for_the_next_form_once(client, intro):
    """Issue 16 finding 4: the next form of this event type opens with what was typed."""
    fields = {"name": "Late Larry", "email": "larry@example.com", "notes": "About the launch"}
    assert lose_a_race(client, **fields).status_code == 302
    _, href = first_slot_link(client)
    assert field_values(open_form(client, href)["page"]) == tuple(fields.values())
    # Used once, then gone.
    assert field_values(open_form(client, href)["page"]) == ("", "", "")


def test_long_non_latin_notes_stay_on_the_page_not_in_the_cookie(client, intro):
    notes = "日本語のメモ" * 300
    response = lose_a_race(client, name="Late Larry", email="larry@example.com", notes=notes)
    assert response.status_code == 200
    assert "notes this long are not" in response.text
    assert notes in response.text and 'value="Late Larry"' in response.text
    cookie = response.headers.get("Set-Cookie", "")
    assert len(cookie) < 1500 and "%E6" not in cookie
    _, href = first_slot_link(client)
    assert field_values(open_form(client, href)["page"]) == ("Late Larry", "larry@example.com", "")


def test_a_draft_stays_with_its_event_type(client, intro, make_user, make_event_type):
    assert lose_a_race(client, name="Late Larry", email="larry@example.com").status_code == 302
    other = make_event_type(make_user("bob", expert=True, timezone="Europe/London"), slug="chat")
    set_availability(other.expert, "Europe/London", {d: [(9 * 60, 12 * 60)] for d in range(5)})
    db.session.commit()
    page = client.get(f"/bob/chat?date={next_week()}&tz={NY}").text
    _, href, _ = slots_on(page)[0]
    assert field_values(open_form(client, href)["page"]) == ("", "", "")


def test_a_draft_never_overrides_a_signed_in_users_details(client, auth, intro, make_user):
    make_user("gina", name="Gina Signed")
    auth.login("gina")
    response = lose_a_race(client, name="Someone Else", email="else@example.com", notes="Hi")
    assert response.status_code == 302
    _, href = first_slot_link(client)
    assert field_values(open_form(client, href)["page"]) == (
        "Gina Signed",
        "gina@example.com",
        "Hi",
    )


QUESTIONS = [
    {"id": "company", "label": "Your company", "kind": "text", "required": True},
    {"id": "goals", "label": "Your goals", "kind": "long_text", "required": False},
    {
        "id": "level",
        "label": "Your level",
        "kind": "choice",
        "required": True,
        "choices": ["Beginner", "Advanced"],
    },
    {
        "id": "country",
        "label": "Your country",
        "kind": "choice",
        "required": False,
        "choices": ["France", "Germany", "India", "Japan", "Peru", "Spain"],
    },
    {"id": "terms", "label": "I accept the terms", "kind": "checkbox", "required": True},
]
ANSWERS = {
    "answer-company": "Acme Secret Labs",
    "answer-goals": "Ship the\r\nsecret launch",
    "answer-level": "Advanced",
    "answer-country": "Peru",
    "answer-terms": "y",
}


@pytest.fixture
def asking(intro):
    intro.questions = QUESTIONS
    db.session.commit()
    return intro


def test_the_questions_are_asked_with_their_labels(client, asking):
    _, href = first_slot_link(client)
    page = open_form(client, href)["page"]
    assert '<label for="answer-company">Your company</label>' in page
    assert 'name="answer-company" maxlength="500" value="" aria-required="true"' in page
    assert '<label for="answer-goals">Your goals (optional)</label>' in page
    assert '<textarea id="answer-goals" name="answer-goals"' in page
    # Two choices: a radio group named by its legend; six: a select.
    assert "<legend>Your level</legend>" in page
    assert 'type="radio" id="answer-level-2" name="answer-level" value="Advanced"' in page
    assert '<label for="answer-country">Your country (optional)</label>' in page
    assert '<select id="answer-country" name="answer-country">' in page
    assert '<option value="">Choose…</option>' in page
    assert 'type="checkbox" id="answer-terms" name="answer-terms" value="y"' in page
    assert '<label for="answer-terms">I accept the terms</label>' in page


def test_a_type_without_questions_asks_none(client, intro):
    _, href = first_slot_link(client)
    assert 'name="answer-' not in open_form(client, href)["page"]


def test_the_answers_are_kept_on_the_booking_and_never_shown_publicly(client, asking):
    start, href = first_slot_link(client)
    response = submit(client, open_form(client, href), **ANSWERS)
    assert response.status_code == 302
    (booking,) = bookings()
    assert booking.answers == {
        "company": "Acme Secret Labs",
        "goals": "Ship the\nsecret launch",
        "level": "Advanced",
        "country": "Peru",
        "terms": True,
    }
    # The booker's confirmation page, the booking page and the expert's page: no answers.
    for path in (response.headers["Location"], f"/ann/intro?date={next_week()}", "/ann"):
        page = client.get(path).text
        assert "Acme Secret Labs" not in page and "secret launch" not in page


@pytest.mark.parametrize(
    ("change", "question", "message"),
    [
        ({"answer-company": ""}, "company", "Please answer this question."),
        ({"answer-company": "   "}, "company", "Please answer this question."),
        ({"answer-company": "x" * 501}, "company", "At most 500 characters."),
        ({"answer-company": "Ac\x07me"}, "company",
         "Must be one line of text, without control characters."),
        ({"answer-level": ""}, "level", "Please answer this question."),
        ({"answer-level": "Expert"}, "level", "Please pick one of the choices."),
        ({"answer-country": "Mars"}, "country", "Please pick one of the choices."),
        ({"answer-goals": "x" * 5001}, "goals", "At most 5000 characters."),
        ({"answer-terms": None}, "terms", "Please tick this box."),
    ],
)  # fmt: skip
def test_a_wrong_answer_shows_on_its_question_and_books_nothing(
    client, asking, change, question, message
):
    _, href = first_slot_link(client)
    fields = {**ANSWERS, **change}
    fields = {name: value for name, value in fields.items() if value is not None}
    response = submit(client, open_form(client, href), **fields)
    assert response.status_code == 200
    page = response.text
    assert f'<div id="answer-{question}-error"><p class="field-error">{message}</p></div>' in page
    assert page.count('class="field-error"') == 1
    assert re.search(f'aria-invalid="true" aria-describedby="answer-{question}-error"', page)
    assert bookings() == []
    # What was typed is kept on the page.
    if question != "company":
        assert 'value="Acme Secret Labs"' in page


def test_every_wrong_answer_and_field_is_flagged_at_once(client, asking):
    _, href = first_slot_link(client)
    response = submit(client, open_form(client, href), name="", **{"answer-country": "Mars"})
    page = response.text
    for field in ("name", "answer-company", "answer-level", "answer-country", "answer-terms"):
        assert f'id="{field}-error"' in page
    assert bookings() == []


def test_answers_to_unknown_questions_are_ignored(client, asking):
    _, href = first_slot_link(client)
    response = submit(client, open_form(client, href), **ANSWERS, **{"answer-other": "x"})
    assert response.status_code == 302
    assert "other" not in bookings()[0].answers


def test_a_question_added_after_the_page_was_read_is_asked_again(client, asking):
    _, href = first_slot_link(client)
    form = open_form(client, href)
    asking.questions = [
        *QUESTIONS,
        {"id": "late", "label": "Late one", "kind": "text", "required": True},
    ]
    db.session.commit()
    response = submit(client, form, **ANSWERS)
    assert response.status_code == 200
    assert bookings() == []
    assert 'id="answer-late-error"' in response.text
    assert '<label for="answer-late">Late one</label>' in response.text


def test_a_just_taken_answer_keeps_the_answers_for_the_next_form(client, asking):
    _, href = first_slot_link(client)
    late = open_form(client, href)
    assert submit(client, open_form(client, href), **ANSWERS).status_code == 302
    response = submit(client, late, name="Late Larry", email="larry@example.com", **ANSWERS)
    assert response.status_code == 302
    _, href = first_slot_link(client)
    page = open_form(client, href)["page"]
    assert 'value="Acme Secret Labs"' in page
    assert "secret launch</textarea>" in page
    assert 'value="Advanced" checked' in page
    assert '<option value="Peru" selected>Peru</option>' in page
    assert 'name="answer-terms" value="y" checked' in page
    # Used once.
    assert 'value="Acme Secret Labs"' not in open_form(client, href)["page"]


def test_long_answers_stay_on_the_page_not_in_the_cookie(client, asking):
    _, href = first_slot_link(client)
    late = open_form(client, href)
    assert submit(client, open_form(client, href), **ANSWERS).status_code == 302
    goals = "日本語の目標" * 200
    response = submit(client, late, **{**ANSWERS, "answer-goals": goals})
    assert response.status_code == 200
    assert "nor long answers" in response.text
    assert goals in response.text
    assert len(response.headers.get("Set-Cookie", "")) < 1500


def test_question_text_is_escaped_and_spaces_in_choices_survive(client, intro):
    intro.questions = [
        {"id": "x", "label": "<script>alert(1)</script>", "kind": "text", "required": False},
        {
            "id": "pick",
            "label": 'Say "hi"',
            "kind": "choice",
            "required": True,
            "choices": [f"A  {i}" for i in range(6)] + ['"><b>'],
        },
    ]
    db.session.commit()
    _, href = first_slot_link(client)
    form = open_form(client, href)
    page = form["page"]
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; (optional)" in page
    assert '<option value="&#34;&gt;&lt;b&gt;">&#34;&gt;&lt;b&gt;</option>' in page
    assert submit(client, form, **{"answer-pick": "A  3"}).status_code == 302
    assert bookings()[0].answers == {"pick": "A  3"}


def test_a_type_that_needs_confirmation_says_so_before_booking(client, intro):
    _, href = first_slot_link(client)
    note = "Ann Expert confirms each request: the time is kept for you until they answer"
    assert note not in open_form(client, href)["page"]
    intro.requires_confirmation = True
    db.session.commit()
    assert note in client.get(f"/ann/intro?date={next_week()}&tz={NY}").text
    assert note in open_form(client, href)["page"]
