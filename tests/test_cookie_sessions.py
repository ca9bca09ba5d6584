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


def test_no_session_in_and_none_out_costs_no_cookie_settings(app, monkeypatch):
    @app.get("/_test/session/untouched")
    def untouched():
        return "ok"

    @app.get("/_test/session/read")
    def read():
        return str(session.get("visits"))

    @app.get("/_test/session/set")
    def set_():
        session["visits"] = 1
        return "set"

    @app.get("/_test/session/clear")
    def clear():
        session.clear()
        return "cleared"

    def unwanted(*_args):
        raise AssertionError("a cookie setting was read")

    interface = type(app.session_interface)
    client = app.test_client()
    name = app.config["SESSION_COOKIE_NAME"]
    with monkeypatch.context() as patch:
        patch.setattr(interface, "get_cookie_domain", unwanted)
        answer = client.get("/_test/session/untouched")
        assert answer.status_code == 200 and "Set-Cookie" not in answer.headers
        answer = client.get("/_test/session/read")  # the answer depended on having none
        assert answer.text == "None" and "Set-Cookie" not in answer.headers
        assert "Cookie" in answer.headers["Vary"]
    answer = client.get("/_test/session/set")
    assert answer.headers["Set-Cookie"].startswith(f"{name}=")
    assert client.get("/_test/session/read").text == "1"
    answer = client.get("/_test/session/clear")  # emptied: the cookie is deleted
    assert answer.headers["Set-Cookie"].startswith(f"{name}=;")
    assert client.get_cookie(name) is None
