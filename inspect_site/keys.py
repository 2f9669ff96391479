"""The platform's own keys: from the environment, or made once on this machine and kept in VAR_DIR.

`make run` needs no configuration, yet no two installations share a key: the first start writes a random one
to var/ (readable by the platform's user alone) and every process after reads it. A deployment that sets
PRODUCTION=1 must give its keys in the environment: a key that lives in one machine's var/ would differ
between its machines, and would be lost with it.
"""

import base64
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ImproperlyConfigured


def kept_key(var_dir: Path, name: str, make) -> str:
    """The key in var_dir/name, made with make() the first time. Written whole under another name and
    linked into place, so processes starting together all read the one that won."""
    path = var_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    var_dir.mkdir(parents=True, exist_ok=True)
    draft = var_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    # Made readable by its owner alone from the start, not chmod-ed after it was written.
    with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(make() + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process made it first: theirs is the key
    finally:
        draft.unlink()
    return path.read_text().strip()


def platform_key(environ: dict, var_dir: Path, production: bool, name: str, make) -> str:
    value = environ.get(name, "").strip()
    if value:
        return value
    if production:
        raise ImproperlyConfigured(f"{name} must be set in the environment when PRODUCTION=1 (see README.md).")
    return kept_key(var_dir, name.lower(), make)


def secret_key(environ: dict, var_dir: Path, production: bool) -> str:
    return platform_key(environ, var_dir, production, "SECRET_KEY", lambda: secrets.token_urlsafe(50))


def encryption_keys(environ: dict, var_dir: Path, production: bool) -> list[str]:
    """SECRETS_ENCRYPTION_KEY: Fernet keys, comma-separated. The first encrypts; every one decrypts, so a key is
    rotated by putting the new one first and running `manage.py rotate_secrets`."""
    value = platform_key(environ, var_dir, production, "SECRETS_ENCRYPTION_KEY", lambda: Fernet.generate_key().decode())
    return [key.strip() for key in value.split(",") if key.strip()]


def vapid_keys(environ: dict, var_dir: Path, production: bool) -> tuple[str, str]:
    """(VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY): the key that signs Web Push requests, as browsers and the web-push
    tools write it (base64url, a P-256 private number of 32 bytes; its public point of 65 bytes). The public key is
    worked out from the private one unless given; browsers keep it, so a new key means subscribing again.
    With PRODUCTION=1 and no key in the environment, Web Push is off ("", ""): a key kept in one machine's var/
    would differ between machines, and push services refuse a request signed by another key than the browser's."""
    if production and not environ.get("VAPID_PRIVATE_KEY", "").strip():
        return "", ""
    private = platform_key(environ, var_dir, production, "VAPID_PRIVATE_KEY", new_vapid_private_key)
    public = environ.get("VAPID_PUBLIC_KEY", "").strip()
    derived = vapid_public_key(private)
    if public and public != derived:
        raise ImproperlyConfigured("VAPID_PUBLIC_KEY is not the public key of VAPID_PRIVATE_KEY (see docs/phone.md).")
    return private, derived


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_vapid_private_key() -> str:
    number = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    return b64url(number.to_bytes(32, "big"))


def vapid_public_key(private: str) -> str:
    try:
        raw = b64url_decode(private)
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError as e:
        raise ImproperlyConfigured(f"VAPID_PRIVATE_KEY is not a base64url P-256 private key ({e}).") from None
    return b64url(key.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint))
