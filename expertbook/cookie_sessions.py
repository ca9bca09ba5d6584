"""Flask's signed-cookie sessions, with the signer made once per secret key.

Flask builds a new itsdangerous serializer (and its signer) in every request's
open_session, whether the request sent a session cookie or not: a few dozen microseconds of
every request, an API call with no cookie included. The serializer holds nothing but its
keys and settings, so one per key serves every request and thread."""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
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
