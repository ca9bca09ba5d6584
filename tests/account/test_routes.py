import re

import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.models import User


def test_profile_requires_login(client):
    response = client.get("/profile")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


def test_edit_name_and_timezone(client, auth, make_user):
    make_user("ann")
    auth.login("ann")
    response = auth.post("/profile", {"name": "Ann Émile", "timezone": "Asia/Kolkata", "bio": ""})
    assert response.status_code == 302
    user = db.session.scalar(sa.select(User))
    assert (user.name, user.timezone) == ("Ann Émile", "Asia/Kolkata")


def test_unknown_timezone_is_refused(auth, make_user):
    make_user("ann")
    auth.login("ann")
    response = auth.post("/profile", {"name": "Ann", "timezone": "Mars/Olympus"})
    assert response.status_code == 200
    assert "Not a valid choice" in response.text
    assert db.session.scalar(sa.select(User.timezone)) == "UTC"


def test_become_expert_opens_the_dashboard(client, auth, make_user):
    make_user("ann")
    auth.login("ann")
    assert client.get("/dashboard/").status_code == 302
    assert "Become an Expert" in client.get("/profile").text
    response = auth.post("/profile/become-expert", token_from="/profile")
    assert response.headers["Location"] == "/dashboard/"
    assert db.session.scalar(sa.select(User.is_expert)) is True
    assert client.get("/dashboard/").status_code == 200
    assert "Become an Expert" not in client.get("/profile").text


def test_become_expert_keeps_the_details_typed_on_the_page(client, auth, make_user):
    """Issue 16, finding 16: the button belongs to the details form, so a display name
    typed but not saved is saved with the promotion, not dropped."""
    make_user("ann")
    auth.login("ann")
    page = client.get("/profile").text
    button = re.search(r"<button[^>]*>Become an Expert</button>", page).group(0)
    assert 'form="profile-form"' in button and 'formaction="/profile/become-expert"' in button
    details = {"name": "Ann Émile", "timezone": "Europe/Berlin", "bio": "Coach"}
    response = auth.post("/profile/become-expert", details, token_from="/profile")
    assert response.headers["Location"] == "/dashboard/"
    user = db.session.scalar(sa.select(User))
    assert (user.name, user.timezone, user.bio, user.is_expert) == (
        "Ann Émile",
        "Europe/Berlin",
        "Coach",
        True,
    )


def test_become_expert_with_bad_details_shows_them_and_changes_nothing(auth, make_user):
    make_user("ann")
    auth.login("ann")
    details = {"name": "Ann", "timezone": "Mars/Olympus", "bio": ""}
    response = auth.post("/profile/become-expert", details, token_from="/profile")
    assert response.status_code == 200
    assert "Not a valid choice" in response.text and 'value="Ann"' in response.text
    user = db.session.scalar(sa.select(User))
    assert (user.name, user.is_expert) == ("", False)


def test_an_unconfirmed_address_still_keeps_the_details(client, auth, make_user):
    make_user("ann", email_confirmed_at=None)
    auth.login("ann")
    details = {"name": "Ann Lee", "timezone": "UTC", "bio": ""}
    response = auth.post("/profile/become-expert", details, token_from="/profile")
    assert response.headers["Location"] == "/profile"
    assert "Confirm your email address first" in client.get("/profile").text
    user = db.session.scalar(sa.select(User))
    assert (user.name, user.is_expert) == ("Ann Lee", False)


def test_become_expert_without_csrf_is_refused(client, auth, make_user):
    make_user("ann")
    auth.login("ann")
    assert client.post("/profile/become-expert").status_code == 400
    assert db.session.scalar(sa.select(User.is_expert)) is False


def test_navigation_follows_the_role(client, auth, make_user):
    assert "Sign up" in client.get("/").text
    make_user("ann")
    auth.login("ann")
    page = client.get("/").text
    assert "My Bookings" in page and "Dashboard" not in page
    auth.post("/profile/become-expert", token_from="/profile")
    assert "Dashboard" in client.get("/").text
