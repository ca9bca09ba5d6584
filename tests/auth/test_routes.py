import re

import pytest
import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.models import User
from tests.conftest import PASSWORD, AuthActions
from tests.mail_inbox import link_in, text_of

CSRF = re.compile(r'(name="csrf-token" content="|name="csrf_token" type="hidden" value=")[^"]+"')


def register(auth, username="ann", email="ann@example.com", password=PASSWORD, confirm=None):
    return auth.post(
        "/auth/register",
        {
            "username": username,
            "email": email,
            "password": password,
            "confirm": confirm if confirm is not None else password,
        },
    )


def test_register_stores_a_hash_and_mails_a_confirmation_link(client, auth, inbox):
    response = register(auth, username="Ann", email="Ann@Example.COM")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"
    user = db.session.scalar(sa.select(User))
    assert (user.username, user.email) == ("ann", "ann@example.com")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert user.email_confirmed_at is None
    (mail,) = inbox.to("ann@example.com")
    assert mail["Subject"] == "Confirm your email address"
    assert link_in(mail, "/auth/verify/")
    assert "Check your inbox" in client.get("/auth/login").text
    assert auth.login("ann").headers["Location"] == "/bookings"
    assert "ann" in client.get("/profile").get_data(as_text=True)


def _answer(response) -> tuple:
    """What a stranger sees of a sign-up: status, where it goes, and the page there."""
    return response.status_code, response.headers.get("Location")


def test_register_answers_the_same_when_the_address_is_taken(app, client, auth, make_user,
                                                             inbox):  # fmt: skip
    make_user("ann", name="Ann Owner")
    fresh = register(auth, "newbie", "newbie@example.com")
    fresh_page = client.get("/auth/login").text.replace("newbie@example.com", "ADDRESS")
    other = app.test_client()
    taken = register(AuthActions(other), "bob", "ANN@example.com")
    taken_page = other.get("/auth/login").text.replace("ann@example.com", "ADDRESS")
    assert _answer(fresh) == _answer(taken) == (302, "/auth/login")
    assert CSRF.sub("", fresh_page) == CSRF.sub("", taken_page)
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == 2  # no "bob"
    (notice,) = inbox.to("ann@example.com")
    assert notice["Subject"] == "You already have an ExpertBook account"
    assert "username ann" in text_of(notice) and "/auth/reset" in text_of(notice)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"username": "auth"}, "reserved"),
        ({"username": "dashboard"}, "reserved"),
        ({"username": "socket.io"}, "lowercase letters"),
        ({"username": "no spaces"}, "lowercase letters"),
        ({"username": "x" * 31}, "Field cannot be longer"),
        ({"username": ""}, "This field is required"),
        ({"email": "not-an-email"}, "email address"),
        ({"password": "short", "confirm": "short"}, "at least 8"),
        ({"confirm": "something else"}, "Passwords differ"),
    ],
)
def test_register_refuses_bad_input(auth, fields, message):
    response = register(auth, **fields)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == 0


def test_register_refuses_a_taken_username(auth, make_user):
    make_user("ann")  # usernames are public (/<username>): saying so tells nothing new
    assert "That username is taken" in register(auth, "ann", "other@example.com").text
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == 1


@pytest.mark.parametrize("login", ["ann", "ANN", "ann@example.com", " Ann@Example.com "])
def test_login_by_username_or_email(client, auth, make_user, login):
    make_user("ann")
    response = auth.login(login)
    assert response.status_code == 302
    assert response.headers["Location"] == "/bookings"
    assert client.get("/bookings").status_code == 200


def test_expert_lands_on_dashboard(auth, make_user):
    make_user("ann", expert=True)
    assert auth.login("ann").headers["Location"] == "/dashboard/"


@pytest.mark.parametrize("login, password", [("ann", "wrong password"), ("nobody", PASSWORD)])
def test_login_refuses_wrong_credentials(client, auth, make_user, login, password):
    make_user("ann")
    response = auth.login(login, password)
    assert response.status_code == 200
    assert "Wrong email, username or password" in response.text
    assert client.get("/bookings").status_code == 302


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/dashboard/", "/dashboard/"),
        ("https://evil.example/", "/bookings"),
        ("//evil.example/", "/bookings"),
        ("/\\evil.example", "/bookings"),
    ],
)
def test_login_next_only_to_this_site(client, auth, make_user, target, expected):
    make_user("ann")
    token = auth.csrf_token()
    response = client.post(
        "/auth/login?next=" + target,
        data={"login": "ann", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == expected


def test_remember_me_sets_a_cookie(client, auth, make_user):
    make_user("ann")
    auth.login("ann", remember="y")
    assert client.get_cookie("remember_token") is not None


def test_logout_ends_the_session(client, auth, make_user):
    make_user("ann")
    auth.login("ann")
    assert auth.logout().headers["Location"] == "/auth/login"
    assert client.get("/profile").status_code == 302


def test_logout_requires_post(client, auth, make_user):
    make_user("ann")
    auth.login("ann")
    assert client.get("/auth/logout").status_code in (404, 405)
    assert client.get("/profile").status_code == 200


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
def test_form_post_without_csrf_token_is_refused(client, path):
    response = client.post(
        path,
        data={
            "username": "ann",
            "email": "a@example.com",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert response.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == 0


def test_login_gives_a_fresh_session(client, auth, make_user):
    make_user("ann")
    client.get("/auth/login")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    auth.login("ann")
    with client.session_transaction() as session:
        assert "planted" not in session


def test_logout_kills_copies_of_the_session_and_the_remember_cookie(app, client, auth, make_user):
    make_user("ann")
    auth.login("ann", remember="y")
    stolen_session = client.get_cookie("session").value
    stolen_remember = client.get_cookie("remember_token").value
    response = auth.logout()
    assert "remember_token=;" in " ".join(response.headers.getlist("Set-Cookie"))
    for cookies in ({"session": stolen_session}, {"remember_token": stolen_remember}):
        thief = app.test_client()
        for name, value in cookies.items():
            thief.set_cookie(name, value)
        assert thief.get("/profile").status_code == 302, f"{cookies} still signs in"


@pytest.mark.parametrize(
    "first, message",
    [
        ({"username": "myemail", "email": "first@example.com"}, "username is taken"),
        ({"username": "first", "email": "myemail@example.com"}, None),
    ],
)
def test_a_name_taken_by_a_concurrent_request_is_a_form_error(pg_app, monkeypatch, first, message):
    """Two people register one name at once: the one whose check ran before the other's
    commit gets the form's message, not a 500 (the unique constraint decides); for the
    address, the same answer as a sign-up that went through."""
    from expertbook.auth import routes

    create = routes.create_user

    def racing(username, *args, **kwargs):
        user = create(username, *args, **kwargs)  # its check passed; now the other commits
        with db.engine.begin() as other:
            other.execute(sa.insert(User).values(password_hash="x", **first))
        return user

    monkeypatch.setattr(routes, "create_user", racing)
    response = register(AuthActions(pg_app.test_client()), "myemail", "myemail@example.com")
    if message is None:
        assert response.status_code == 302 and response.headers["Location"] == "/auth/login"
    else:
        assert response.status_code == 200
        assert message in response.text
    assert db.session.scalars(sa.select(User.email)).all() == [first["email"]]


def test_registration_reads_nothing_before_the_hash(app, auth, monkeypatch):
    """Under eventlet the hash yields, and another request may commit meanwhile. On SQLite a
    read transaction overtaken by another write can no longer write, so registration must
    not have read anything before it hashes."""
    from expertbook import accounts

    hash_password = accounts.hash_password

    def hash_while_another_request_writes(password):
        with db.engine.begin() as other:
            other.execute(sa.insert(User).values(username="bob", email="b@example.com",
                                                 password_hash="x"))  # fmt: skip
        return hash_password(password)

    monkeypatch.setattr(accounts, "hash_password", hash_while_another_request_writes)
    response = register(auth, "ann", "ann@example.com")
    assert response.status_code == 302
    assert sorted(db.session.scalars(sa.select(User.username))) == ["ann", "bob"]


def test_a_second_step_without_a_password_goes_to_log_in(client):
    response = client.get("/auth/two-factor")
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login"


@pytest.mark.parametrize(
    "sent, stored",
    [
        ("America/Los_Angeles", "America/Los_Angeles"),
        ("Asia/Calcutta", "Asia/Kolkata"),  # the name browsers still report: today's name
        (None, "UTC"),  # a script that sends no zone at all
    ],
)
def test_register_keeps_the_zone_the_page_sent(auth, sent, stored):
    fields = {"username": "ann", "email": "ann@example.com", "password": PASSWORD}
    fields["confirm"] = PASSWORD
    if sent is not None:
        fields["timezone"] = sent
    assert auth.post("/auth/register", fields).status_code == 302
    assert db.session.scalar(sa.select(User.timezone)) == stored


@pytest.mark.parametrize("sent", ["", "Mars/Olympus_Mons"])
def test_register_asks_for_a_zone_the_page_left_empty(auth, sent):
    fields = {"username": "ann", "email": "ann@example.com", "password": PASSWORD}
    response = auth.post("/auth/register", {**fields, "confirm": PASSWORD, "timezone": sent})
    assert response.status_code == 200
    assert ("Choose your time zone" if not sent else "Unknown time zone") in response.text
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == 0


def test_the_log_out_button_says_it_ends_every_session(client, auth, make_user):
    """Issue 16, finding 10: log-out ends every session, and the button says so."""
    make_user("ann")
    auth.login("ann")
    assert "Log out everywhere</button>" in client.get("/profile").text
    auth.logout()
    assert "signed out on every device" in client.get("/auth/login").text
