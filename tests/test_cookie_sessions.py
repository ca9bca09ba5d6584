"""The session cookie's signer is made once per secret key, and follows the key."""

from flask import session


def test_one_signer_per_key_and_a_new_key_refuses_the_old_cookies(app):
    interface = app.session_interface
    assert interface.get_signing_serializer(app) is interface.get_signing_serializer(app)

    @app.get("/_test/cookie-sessions")
    def visit():
        session["visits"] = session.get("visits", 0) + 1
        return str(session["visits"])

    client = app.test_client()
    assert client.get("/_test/cookie-sessions").text == "1"
    assert client.get("/_test/cookie-sessions").text == "2"
    old = app.secret_key
    app.secret_key = "another secret key"
    assert client.get("/_test/cookie-sessions").text == "1"  # the old signature is refused
    # The old key as a fallback: cookies signed with it are read again.
    app.config["SECRET_KEY_FALLBACKS"] = [old]
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], "", expires=0)
    app.secret_key = old
    assert client.get("/_test/cookie-sessions").text == "1"
    app.secret_key = "another secret key"
    assert client.get("/_test/cookie-sessions").text == "2"
