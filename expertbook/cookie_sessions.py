"""Flask's signed-cookie sessions, with the signer made once per secret key, and nothing
done for a request that brings no session and leaves none.

Flask builds a new itsdangerous serializer (and its signer) in every request's
open_session, whether the request sent a session cookie or not: a few dozen microseconds of
every request, an API call with no cookie included. The serializer holds nothing but its
keys and settings, so one per key serves every request and thread.

A request without the cookie (an API call, a first visit) got its empty session through a
lookup that raised and caught a KeyError, and after it Flask read seven cookie settings
before finding the session empty and untouched; together 3% of a booking's CPU in a
server under load (bench/booking.py's booking path)."""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer


class CookieSessions(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._serializers: dict[tuple, URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        try:
            return self._serializers[key]
        except KeyError:
            serializer = super().get_signing_serializer(app)
            self._serializers = {key: serializer}  # a key changed: the old one's is dropped
            return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) in request.cookies:
            return super().open_session(app, request)
        return None if self.get_signing_serializer(app) is None else self.session_class()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if session or session.modified:  # a cookie to set, or one to delete
            super().save_session(app, session, response)
        elif session.accessed:
            response.vary.add("Cookie")  # as Flask's: the answer depended on having none
