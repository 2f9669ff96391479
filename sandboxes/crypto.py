"""Encryption at rest for repo secrets (Fernet: AES-128-CBC + HMAC-SHA256), with key rotation."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

# Earlier versions derived the key from SECRET_KEY, whose embedded default was public. Secrets stored then are
# still read (`manage.py rotate_secrets` re-encrypts them with the current key); nothing is written with it.
LEGACY_SECRET_KEYS = ("insecure-embedded-default-change-me",)


def derived_key(secret_key: str) -> str:
    digest = hashlib.sha256(("secrets-at-rest:" + secret_key).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def _fernet() -> MultiFernet:
    keys = list(settings.SECRETS_ENCRYPTION_KEYS)
    legacy = [derived_key(key) for key in (settings.SECRET_KEY, *LEGACY_SECRET_KEYS)]
    return MultiFernet([Fernet(key) for key in keys + legacy])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as e:
        raise ValueError("secret cannot be decrypted with the configured keys (SECRETS_ENCRYPTION_KEY)") from e


def rotate(token: str) -> str:
    """The same secret encrypted with the first key. ValueError if no configured key opens it."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as e:
        raise ValueError("secret cannot be decrypted with the configured keys (SECRETS_ENCRYPTION_KEY)") from e
