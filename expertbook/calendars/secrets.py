"""Calendar passwords at rest: Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`), with
a key derived from ENCRYPTION_KEY, else SECRET_KEY. In development with neither set (the
secret key is then random per start) a key is kept in the instance folder, so a restart can
still read yesterday's passwords."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

KEY_FILE = "encryption.key"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted: the key it was made with is gone."""


def _derive(material: str) -> bytes:
    """A Fernet key from any string: HKDF, so a passphrase-like key is stretched into 32
    uniform bytes, and the same SECRET_KEY used elsewhere yields an unrelated key here."""
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"expertbook calendar secrets"
    ).derive(material.encode())
    return base64.urlsafe_b64encode(key)


def _key_material() -> str:
    config = current_app.config
    if config.get("ENCRYPTION_KEY"):
        return config["ENCRYPTION_KEY"]
    if not config.get("SECRET_KEY_IS_RANDOM"):
        return config["SECRET_KEY"]
    path = Path(current_app.instance_path) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created readable by its owner only; a second process racing here loses to the first.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(Fernet.generate_key().decode())
    return path.read_text().strip()


def _fernet() -> Fernet:
    fernet = current_app.extensions.get("expertbook.fernet")
    if fernet is None:
        fernet = current_app.extensions.setdefault(
            "expertbook.fernet", Fernet(_derive(_key_material()))
        )
    return fernet


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(token: str) -> str:
    """Raises SecretUnreadable when the key changed since `token` was made."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The saved password can no longer be read (the server's encryption key changed); "
            "please remove this calendar and connect it again."
        ) from None
