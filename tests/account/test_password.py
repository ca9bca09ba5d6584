"""Change password: the current one first, the sign-up rules, every other session ends."""

import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.models import EmailToken, User, utcnow
from expertbook.passwords import verify_password
from tests.conftest import PASSWORD, AuthActions
from tests.mail_inbox import text_of

NEW = "a brand new passphrase"


def change(auth, current=PASSWORD, new=NEW, confirm=None):
    return auth.post(
        "/account/password",
        {"current_password": current, "password": new, "confirm": confirm or new},
    )


def test_password_page_needs_a_session(client):
    response = client.get("/account/password")
    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")


def test_change_keeps_this_session_and_ends_every_other_one(app, client, auth, make_user, inbox):
    user = make_user("ann")
    other_device = app.test_client()
    AuthActions(other_device).login("ann", remember="y")
    stolen_remember = other_device.get_cookie("remember_token").value
    auth.login("ann", remember="y")

    response = change(auth)

    assert response.status_code == 302 and response.headers["Location"] == "/profile"
    assert client.get("/profile").status_code == 200  # this session stays
    assert other_device.get("/profile").status_code == 302  # the other one is signed out
    thief = app.test_client()
    thief.set_cookie("remember_token", stolen_remember)
    assert thief.get("/profile").status_code == 302
    # This browser's own remember-me cookie was renewed under the new session version.
    fresh = app.test_client()
    fresh.set_cookie("remember_token", client.get_cookie("remember_token").value)
    assert fresh.get("/profile").status_code == 200
    db.session.refresh(user)
    assert verify_password(user.password_hash, NEW)
    (notice,) = inbox.to("ann@example.com")
    assert notice["Subject"] == "Your password was changed"
    assert "/auth/reset" in text_of(notice)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"current": "not my password"}, "not your current password"),
        ({"new": "short"}, "at least 8"),
        ({"new": "x" * 257}, "longer than 256"),
        ({"confirm": "something else"}, "Passwords differ"),
        ({"current": ""}, "This field is required"),
    ],
)
def test_change_refuses_bad_input(client, auth, make_user, inbox, fields, message):
    make_user("ann")
    auth.login("ann")
    response = change(auth, **fields)
    assert response.status_code == 200 and message in response.text
    assert verify_password(db.session.scalar(sa.select(User.password_hash)), PASSWORD)
    assert client.get("/profile").status_code == 200
    assert inbox.messages == []


def test_change_retires_reset_links(client, auth, make_user, inbox):
    from expertbook.auth.tokens import issue_email_token

    user = make_user("ann")
    secret = issue_email_token(user, EmailToken.RESET, utcnow())
    db.session.commit()
    auth.login("ann")
    change(auth)
    assert client.get(f"/auth/reset/{secret}").status_code == 404


def test_change_without_csrf_is_refused(client, auth, make_user):
    make_user("ann")
    auth.login("ann")
    data = {"current_password": PASSWORD, "password": NEW, "confirm": NEW}
    assert client.post("/account/password", data=data).status_code == 400
    assert verify_password(db.session.scalar(sa.select(User.password_hash)), PASSWORD)
