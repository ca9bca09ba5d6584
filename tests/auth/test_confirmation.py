"""Address confirmation: sign-up mails a link, Become an Expert waits for it, a banner
sends it again; users the maintainer makes are confirmed."""

from datetime import timedelta

import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.models import EmailToken, User
from tests.auth.test_routes import register
from tests.mail_inbox import link_in


def signed_up(auth, inbox) -> str:
    """Sign up as ann, log in; return the confirmation link."""
    register(auth, "ann", "ann@example.com")
    auth.login("ann")
    return link_in(inbox.to("ann@example.com")[0], "/auth/verify/")


def is_expert() -> bool:
    return db.session.scalar(sa.select(User.is_expert))


def test_become_an_expert_waits_for_the_confirmed_address(client, auth, inbox):
    link = signed_up(auth, inbox)
    page = client.get("/profile").text
    assert "Please confirm ann@example.com" in page and "Send it again" in page

    refused = auth.post("/profile/become-expert", token_from="/profile")
    assert refused.headers["Location"] == "/profile"
    assert "Confirm your email address first" in client.get("/profile").text
    assert is_expert() is False

    confirmed = client.get(link)
    assert confirmed.status_code == 302 and confirmed.headers["Location"] == "/profile"
    page = client.get("/profile").text
    assert "ann@example.com is confirmed" in page and "Send it again" not in page
    assert auth.post("/profile/become-expert", token_from="/profile").status_code == 302
    assert is_expert() is True


def test_the_link_works_without_a_session_and_twice(app, auth, inbox):
    link = signed_up(auth, inbox)
    stranger = app.test_client()
    assert stranger.get(link).headers["Location"] == "/profile"
    assert stranger.get(link).headers["Location"] == "/profile"  # a second click is harmless
    assert db.session.scalar(sa.select(User.email_confirmed_at)) is not None


def test_the_banner_sends_a_new_link(client, auth, inbox):
    signed_up(auth, inbox)
    response = auth.post("/account/confirm-email", token_from="/profile")
    assert response.headers["Location"] == "/profile"
    first, second = inbox.to("ann@example.com")
    new_link = link_in(second, "/auth/verify/")
    assert new_link != link_in(first, "/auth/verify/")
    client.get(new_link)
    assert db.session.scalar(sa.select(User.email_confirmed_at)) is not None
    # Confirmed: no banner, and the button sends nothing more.
    assert "Send it again" not in client.get("/profile").text
    auth.post("/account/confirm-email", token_from="/profile")
    assert len(inbox.to("ann@example.com")) == 2


def test_an_old_link_is_refused(client, auth, inbox):
    link = signed_up(auth, inbox)
    token = db.session.scalar(sa.select(EmailToken))
    token.expires_at -= timedelta(days=2, seconds=1)
    db.session.commit()
    response = client.get(link)
    assert response.status_code == 404 and "new one from your profile" in response.text
    assert db.session.scalar(sa.select(User.email_confirmed_at)) is None


def test_users_made_by_the_cli_and_the_demo_are_confirmed(runner):
    args = ["users", "create", "ann", "ann@example.com", "--password", "long enough"]
    assert runner.invoke(args=args).exit_code == 0
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    users = db.session.scalars(sa.select(User)).all()
    assert {u.username for u in users} == {"ann", "demo"}
    assert all(u.email_confirmed_at is not None for u in users)
