"""Two-factor sign-in: enrol with a QR code and a first code, sign in with a code or a
recovery code, each once; the CLI turns it off for a locked-out user."""

import re
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa

from expertbook.auth.two_factor import (
    TwoFactorError,
    enable_two_factor,
    passes_second_factor,
    start_enrolment,
)
from expertbook.extensions import db
from expertbook.models import RecoveryCode, User, hash_token, utcnow
from tests.conftest import PASSWORD, AuthActions

CODE = re.compile(r"<code>([a-z0-9]{5}(?:-[a-z0-9]{5}){3})</code>")


def enrol(client, auth) -> tuple[str, list[str]]:
    """Enrol the signed-in user through the pages; return the secret and recovery codes."""
    page = client.get("/account/two-factor").text
    assert 'src="data:image/svg+xml' in page  # the QR code, drawn here
    secret = re.search(r"data-totp-secret>([A-Z2-7]+)<", page).group(1)
    done = auth.post("/account/two-factor", {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200, done.text
    codes = CODE.findall(done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def code_after(secret: str, steps: int = 1) -> str:
    """A valid code of a later time step (the current one was used at enrolment)."""
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(utcnow()) + steps)


@pytest.fixture
def enrolled(client, auth, make_user, inbox):
    make_user("ann")
    auth.login("ann")
    secret, codes = enrol(client, auth)
    auth.logout()
    return secret, codes


def test_enrolment_stores_hashes_and_mails_a_notice(client, auth, make_user, inbox):
    make_user("ann")
    auth.login("ann")
    _secret, codes = enrol(client, auth)
    user = db.session.scalar(sa.select(User))
    assert user.two_factor_enabled
    stored = set(db.session.scalars(sa.select(RecoveryCode.code_hash)))
    assert stored == {hash_token(code.replace("-", "")) for code in codes}
    assert not any(code in str(stored) for code in codes)
    assert inbox.to("ann@example.com")[-1]["Subject"] == "Two-factor sign-in turned on"
    # Shown once: the page now says it is on, without the codes.
    page = client.get("/account/two-factor").text
    assert "is on" in page and not CODE.search(page)


def test_a_wrong_first_code_enrols_nothing(client, auth, make_user):
    make_user("ann")
    auth.login("ann")
    client.get("/account/two-factor")
    response = auth.post("/account/two-factor", {"code": "000000"})
    assert response.status_code == 200 and "not right" in response.text
    assert not db.session.scalar(sa.select(User)).two_factor_enabled


def test_sign_in_asks_for_the_code_after_the_password(client, auth, enrolled):
    secret, _codes = enrolled
    response = auth.login("ann")
    assert response.headers["Location"] == "/auth/two-factor"
    assert client.get("/profile").status_code == 302  # not signed in yet
    wrong = auth.post("/auth/two-factor", {"code": "123456"})
    assert wrong.status_code == 200 and "not right" in wrong.text
    assert client.get("/profile").status_code == 302
    good = auth.post("/auth/two-factor", {"code": code_after(secret)})
    assert good.headers["Location"] == "/bookings"
    assert client.get("/profile").status_code == 200


def test_a_code_works_once(app, client, auth, enrolled):
    secret, _codes = enrolled
    code = code_after(secret)
    auth.login("ann")
    assert auth.post("/auth/two-factor", {"code": code}).status_code == 302
    other = AuthActions(app.test_client())
    other.login("ann")
    replay = other.post("/auth/two-factor", {"code": code})
    assert replay.status_code == 200 and "used already" in replay.text


def test_a_recovery_code_signs_in_once(app, client, auth, enrolled):
    _secret, codes = enrolled
    auth.login("ann")
    typed = codes[3].upper().replace("-", " ")  # as someone might type it
    assert auth.post("/auth/two-factor", {"code": typed}).headers["Location"] == "/bookings"
    other = AuthActions(app.test_client())
    other.login("ann")
    assert other.post("/auth/two-factor", {"code": codes[3]}).status_code == 200
    assert other.post("/auth/two-factor", {"code": codes[4]}).status_code == 302


def test_the_second_step_expires_and_ends_with_the_password(client, auth, enrolled):
    secret, _codes = enrolled
    auth.login("ann")
    with client.session_transaction() as session:
        session["second_factor"] = {**session["second_factor"], "at": 0}  # long ago
    response = auth.post("/auth/two-factor", {"code": code_after(secret)}, token_from="/")
    assert response.headers["Location"] == "/auth/login"
    assert client.get("/profile").status_code == 302


def test_disable_asks_for_the_password(client, auth, enrolled, inbox):
    secret, _codes = enrolled
    auth.login("ann")
    auth.post("/auth/two-factor", {"code": code_after(secret)})
    path = "/account/two-factor/disable"
    auth.post(path, {"password": "wrong password"}, token_from="/account/two-factor")
    assert db.session.scalar(sa.select(User)).two_factor_enabled
    auth.post(path, {"password": PASSWORD}, token_from="/account/two-factor")
    user = db.session.scalar(sa.select(User))
    db.session.refresh(user)
    assert not user.two_factor_enabled and user.totp_secret is None
    assert db.session.scalar(sa.select(sa.func.count(RecoveryCode.id))) == 0
    assert inbox.to("ann@example.com")[-1]["Subject"] == "Two-factor sign-in turned off"


def test_new_recovery_codes_replace_the_old(client, auth, enrolled):
    secret, old = enrolled
    auth.login("ann")
    auth.post("/auth/two-factor", {"code": code_after(secret)})
    response = auth.post(
        "/account/two-factor/recovery-codes", {"password": PASSWORD},
        token_from="/account/two-factor",
    )  # fmt: skip
    new = CODE.findall(response.text)
    assert len(new) == 10 and not set(new) & set(old)
    user = db.session.scalar(sa.select(User))
    assert not passes_second_factor(user, old[0], utcnow())
    assert passes_second_factor(user, new[0], utcnow())


def test_cli_reset_2fa_lets_a_locked_out_user_in(runner, client, auth, enrolled):
    result = runner.invoke(args=["users", "reset-2fa", "ANN"])
    assert result.exit_code == 0 and "off for ann" in result.output
    assert auth.login("ann").headers["Location"] == "/bookings"
    assert runner.invoke(args=["users", "reset-2fa", "nobody"]).exit_code != 0


def test_codes_of_the_neighbouring_steps_only(app, make_user):
    user = make_user("ann")
    totp = pyotp.TOTP(start_enrolment(user))
    now = utcnow()
    with pytest.raises(TwoFactorError):
        enable_two_factor(user, totp.at(now - timedelta(seconds=95)), now)
    enable_two_factor(user, totp.at(now - timedelta(seconds=30)), now)
    assert not passes_second_factor(user, totp.at(now - timedelta(seconds=30)), now)
    assert passes_second_factor(user, totp.at(now + timedelta(seconds=30)), now)
    assert not passes_second_factor(user, totp.at(now + timedelta(seconds=95)), now)


@pytest.fixture
def limited_app(tmp_path):
    from tests.test_limits import app_with_limits

    yield from app_with_limits(tmp_path)


def test_the_second_step_has_its_own_attempt_limit(limited_app, make_user):
    user = make_user("ann")
    secret = start_enrolment(user)
    enable_two_factor(user, pyotp.TOTP(secret).now(), utcnow())
    db.session.commit()
    auth = AuthActions(limited_app.test_client())
    assert auth.login("ann").headers["Location"] == "/auth/two-factor"
    statuses = [auth.post("/auth/two-factor", {"code": "000000"}).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    limited = auth.post("/auth/two-factor", {"code": code_after(secret)})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "One more step" in limited.text and "please wait" in limited.text
    assert auth.client.get("/profile").status_code == 302
