"""API tokens on the dashboard: created and shown once, listed, revoked."""

import re

import sqlalchemy as sa

from expertbook.extensions import db
from expertbook.models import ApiToken, hash_token


def test_create_shows_the_token_once_and_it_works(client, auth, make_user):
    make_user("coach", expert=True)
    auth.login("coach")
    page = auth.post("/dashboard/tokens", {"name": "laptop"}).text
    secret = re.search(r'id="new-token" type="text" readonly value="([^"]+)"', page).group(1)
    token = db.session.scalar(sa.select(ApiToken))
    assert token.name == "laptop" and token.token_hash == hash_token(secret)
    assert secret not in client.get("/dashboard/tokens").text  # shown once
    me = client.get("/api/v1/event-types", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200


def test_revoke_ends_the_token(client, auth, make_user):
    make_user("coach", expert=True)
    auth.login("coach")
    page = auth.post("/dashboard/tokens", {"name": "script"}).text
    secret = re.search(r'id="new-token" type="text" readonly value="([^"]+)"', page).group(1)
    token_id = db.session.scalar(sa.select(ApiToken.id))
    revoked = auth.post(f"/dashboard/tokens/{token_id}/revoke", token_from="/dashboard/tokens")
    assert revoked.status_code == 302
    assert "Revoked" in client.get("/dashboard/tokens").text
    answer = client.get("/api/v1/event-types", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 401


def test_another_experts_token_is_404_and_stays_active(client, auth, make_user):
    from expertbook.accounts import create_api_token

    other = make_user("other", expert=True)
    create_api_token(other, "theirs")
    db.session.commit()
    make_user("coach", expert=True)
    auth.login("coach")
    token_id = db.session.scalar(sa.select(ApiToken.id))
    response = auth.post(f"/dashboard/tokens/{token_id}/revoke", token_from="/dashboard/tokens")
    assert response.status_code == 404
    assert db.session.scalar(sa.select(ApiToken.revoked_at)) is None
    assert "theirs" not in client.get("/dashboard/tokens").text


def test_empty_and_huge_names_are_refused(auth, make_user):
    make_user("coach", expert=True)
    auth.login("coach")
    for name in ("", "x" * 101):
        page = auth.post("/dashboard/tokens", {"name": name}).text
        assert 'class="field-error"' in page
    assert db.session.scalar(sa.select(sa.func.count(ApiToken.id))) == 0


def test_live_tokens_are_capped_with_a_clear_message(auth, make_user):
    from expertbook.accounts import MAX_LIVE_TOKENS, create_api_token

    coach = make_user("coach", expert=True)
    for i in range(MAX_LIVE_TOKENS):
        create_api_token(coach, f"t{i}")
    db.session.commit()
    auth.login("coach")
    page = auth.post("/dashboard/tokens", {"name": "one more"}).text
    assert f"already have {MAX_LIVE_TOKENS} active tokens" in page and 'id="new-token"' not in page
    assert db.session.scalar(sa.select(sa.func.count(ApiToken.id))) == MAX_LIVE_TOKENS
    # A revoked token frees its place.
    db.session.scalars(sa.select(ApiToken)).first().revoked_at = db.func.now()
    db.session.commit()
    assert 'id="new-token"' in auth.post("/dashboard/tokens", {"name": "one more"}).text


def test_revoking_and_a_new_feed_address_ask_first(client, auth, make_user):
    """Issue 16, finding 11: both act only after a confirmation (dashboard.js asks)."""
    from tests.dashboard import sign_in_expert

    sign_in_expert(make_user, auth, username="tess")
    auth.post("/dashboard/tokens", {"name": "laptop"})
    page = client.get("/dashboard/tokens").text
    assert 'data-confirm="Revoke “laptop”?' in page and "js/dashboard.js" in page
    feed = auth.post("/calendar/regenerate", token_from="/dashboard/").text
    assert 'data-copy="feed-url"' in feed and "js/dashboard.js" in feed
    assert 'data-confirm="Make a new feed address?' in client.get("/dashboard/").text
