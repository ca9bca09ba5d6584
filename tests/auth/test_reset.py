"""Password reset by mail, through a real SMTP server: the same answer for any address,
a link that works once, for an hour, and dies when the password changes."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.models import EmailToken, User, hash_token
from expertbook.passwords import verify_password
from tests.conftest import PASSWORD, AuthActions
from tests.mail_inbox import link_in, text_of

NEW = "a brand new passphrase"


def ask(auth, email):
    return auth.post("/auth/reset", {"email": email})


def choose(auth, link, password=NEW, confirm=None):
    return auth.post(link, {"password": password, "confirm": confirm or password})


def test_a_reset_link_sets_a_new_password_and_signs_everyone_out(app, client, auth,
                                                                  make_user, inbox):  # fmt: skip
    make_user("ann")
    elsewhere = app.test_client()
    AuthActions(elsewhere).login("ann", remember="y")

    response = ask(auth, " ANN@example.com ")
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login"
    (mail,) = inbox.to("ann@example.com")
    assert mail["Subject"] == "Reset your password"
    link = link_in(mail, "/auth/reset/")
    assert "once, within the hour" in text_of(mail)
    # Only the hash is stored.
    secret = link.rsplit("/", 1)[1]
    assert db.session.scalar(sa.select(EmailToken.token_hash)) == hash_token(secret)
    assert secret not in str(db.session.scalars(sa.select(EmailToken.token_hash)).all())

    assert client.get(link).status_code == 200
    answer = choose(auth, link)
    assert answer.status_code == 302 and answer.headers["Location"] == "/auth/login"
    assert verify_password(db.session.scalar(sa.select(User.password_hash)), NEW)
    assert elsewhere.get("/profile").status_code == 302  # every session ended
    assert inbox.to("ann@example.com")[-1]["Subject"] == "Your password was changed"
    assert auth.login("ann", NEW).status_code == 302

    # Once only.
    assert client.get(link).status_code == 404
    assert choose(AuthActions(app.test_client()), link, "another passphrase").status_code == 404


def test_the_same_answer_whether_or_not_the_address_exists(app, make_user, inbox):
    make_user("ann")
    answers = []
    for address in ("ann@example.com", "nobody@example.com"):
        client = app.test_client()
        response = ask(AuthActions(client), address)
        page = client.get("/auth/login").text.replace(address, "ADDRESS")
        answers.append((response.status_code, response.headers["Location"], _no_csrf(page)))
    assert answers[0] == answers[1]
    assert [m["To"] for m in inbox.messages] == ["ann@example.com"]


def _no_csrf(page: str) -> str:
    import re

    return re.sub(r'(csrf-token" content="|csrf_token" type="hidden" value=")[^"]+', "", page)


def test_a_link_expires_after_an_hour(client, auth, make_user, inbox):
    make_user("ann")
    ask(auth, "ann@example.com")
    link = link_in(inbox.to("ann@example.com")[0], "/auth/reset/")
    token = db.session.scalar(sa.select(EmailToken))
    assert token.expires_at - token.created_at == timedelta(hours=1)
    token.created_at -= timedelta(hours=1, seconds=1)  # sent an hour and a second ago
    token.expires_at -= timedelta(hours=1, seconds=1)
    db.session.commit()
    assert client.get(link).status_code == 404
    assert choose(auth, link).status_code == 404
    assert verify_password(db.session.scalar(sa.select(User.password_hash)), PASSWORD)


def test_a_link_dies_when_the_password_changes(client, auth, make_user, inbox):
    make_user("ann")
    ask(auth, "ann@example.com")
    ask(auth, "ann@example.com")
    first, second = (link_in(m, "/auth/reset/") for m in inbox.to("ann@example.com"))
    assert choose(auth, second).status_code == 302
    assert client.get(first).status_code == 404  # the other link died with the change


def test_a_link_is_for_the_address_it_was_sent_to(client, auth, make_user, inbox):
    user = make_user("ann")
    ask(auth, "ann@example.com")
    link = link_in(inbox.to("ann@example.com")[0], "/auth/reset/")
    user.email = "ann.new@example.com"
    db.session.commit()
    assert client.get(link).status_code == 404


@pytest.mark.parametrize("token", ["x", "a" * 43, "a" * 500, "%00", "..%2F..%2Fetc"])
def test_made_up_links_are_404(client, token):
    assert client.get(f"/auth/reset/{token}").status_code == 404


def test_new_password_follows_the_sign_up_rules(client, auth, make_user, inbox):
    make_user("ann")
    ask(auth, "ann@example.com")
    link = link_in(inbox.to("ann@example.com")[0], "/auth/reset/")
    response = choose(auth, link, "short")
    assert response.status_code == 200 and "at least 8" in response.text
    assert client.get(link).status_code == 200  # still usable
