"""The platform's own keys: from the environment, or made once on this machine and kept in VAR_DIR.

`make run` needs no configuration, yet no two installations share a key: the first start writes a random one
to var/ (readable by the platform's user alone) and every process after reads it. A deployment that sets
PRODUCTION=1 must give its keys in the environment: a key that lives in one machine's var/ would differ
between its machines, and would be lost with it.
"""

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet
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
