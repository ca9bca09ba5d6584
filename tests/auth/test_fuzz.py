"""Generated hostile input at every account form: huge and empty strings, NUL and other
control characters, repeated fields, missing fields. Never a 5xx, a NUL is always 400, and
another user's password, sessions and two-factor state stay as they were."""

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expertbook.auth.tokens import issue_email_token
from expertbook.extensions import db
from expertbook.models import EmailToken, User, utcnow
from tests.conftest import AuthActions

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
strings = (
    st.text(max_size=40)
    | st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=10)  # NUL, controls
    | st.sampled_from(["", " ", "\x00", "a\x00b", "x" * 300, "x" * 5000, "٣٤٥٦٧٨", "1" * 6])
    | st.just("ann@example.com")
)
values = strings | st.lists(strings, min_size=2, max_size=3)  # a field sent more than once

FORMS = {
    "/auth/register": ["username", "email", "password", "confirm"],
    "/auth/login": ["login", "password", "remember"],
    "/auth/reset": ["email"],
    "/auth/reset/{reset}": ["password", "confirm"],
    "/account/password": ["current_password", "password", "confirm"],
    "/account/two-factor": ["code"],
    "/account/two-factor/disable": ["password"],
    "/account/two-factor/recovery-codes": ["password"],
    "/account/confirm-email": ["anything"],
}
SIGNED_IN = ("/account/",)


def forms(fields):
    return st.fixed_dictionaries({}, optional={name: values for name in [*fields, "extra"]})


@pytest.fixture
def victim(make_user):
    """Ann, whose state nothing here may change; and a reset link of hers."""
    user = make_user("ann", email="ann@example.com")
    reset = issue_email_token(user, EmailToken.RESET, utcnow())
    db.session.commit()
    return user, reset


def state():
    db.session.rollback()
    return db.session.execute(
        sa.select(User.password_hash, User.session_version, User.totp_enabled_at).order_by(User.id)
    ).all()


@pytest.mark.parametrize("path", list(FORMS))
def test_account_forms_survive_anything(app, client, make_user, victim, path):
    _ann, reset = victim
    fuzzer = make_user("fuzzer")
    auth = AuthActions(client)
    if path.startswith(SIGNED_IN):
        auth.login(fuzzer.username)
    url = path.format(reset=reset)
    token = auth.csrf_token("/auth/reset")
    before = state()

    @FUZZ
    @given(form=forms(FORMS[path]))
    def run(form):
        response = client.post(url, data={**form, "csrf_token": token})
        assert response.status_code < 500, response.text
        if any("\x00" in (v if isinstance(v, str) else "".join(v)) for v in form.values()):
            assert response.status_code == 400

    run()
    after = state()
    ann_before, ann_after = before[0], after[0]
    if path != "/auth/reset/{reset}":
        assert ann_after == ann_before, "a form changed Ann's account"
