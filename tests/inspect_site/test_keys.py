"""The platform's keys: made once per machine unless given, required in production, and rotatable."""

import json
import os
import stat
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command

from sandboxes import crypto
from sandboxes.models import RepoSecret
from tests.support.rows import repo_with_image

SHOW = ("import json; from django.conf import settings as s; "
        "print(json.dumps([s.SECRET_KEY, s.SECRETS_ENCRYPTION_KEYS]))")


def start(var_dir, **env) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SECRETS_ENCRYPTION_KEY", "PRODUCTION")}
    return subprocess.Popen([sys.executable, "manage.py", "shell", "-c", SHOW], cwd=settings.BASE_DIR,
                            env={**clean, "VAR_DIR": str(var_dir), **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_each_machine_makes_its_keys_once_and_every_process_reads_the_same(open_tmp):
    processes = [start(open_tmp / "var") for _ in range(4)]  # starting together, as make run's processes do
    answers = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        answers.append(json.loads(out.strip().splitlines()[-1]))
    secret_key, encryption_keys = answers[0]
    assert all(answer == answers[0] for answer in answers)
    assert len(secret_key) >= 50 and secret_key != "insecure-embedded-default-change-me"
    Fernet(encryption_keys[0])  # a valid key
    for name in ("secret_key", "secrets_encryption_key"):
        assert stat.S_IMODE((open_tmp / "var" / name).stat().st_mode) == 0o600
    assert not [p for p in (open_tmp / "var").iterdir() if p.name.startswith(".")]  # no drafts left
    # Another machine (another var/) makes its own.
    other, _ = start(open_tmp / "other").communicate(timeout=60)
    assert json.loads(other.strip().splitlines()[-1])[0] != secret_key


def test_production_refuses_to_start_without_keys_in_the_environment(open_tmp):
    out, err = start(open_tmp / "var", PRODUCTION="1").communicate(timeout=60)
    assert "SECRET_KEY must be set in the environment when PRODUCTION=1" in err
    assert not (open_tmp / "var" / "secret_key").exists()
    given = start(open_tmp / "var", PRODUCTION="1", SECRET_KEY="k" * 50,
                  SECRETS_ENCRYPTION_KEY=Fernet.generate_key().decode())
    out, err = given.communicate(timeout=60)
    assert given.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])[0] == "k" * 50


@pytest.mark.django_db
def test_a_key_is_rotated_without_losing_a_secret(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [old]
    repo = repo_with_image()
    secret = RepoSecret(repo=repo, name="NPM_TOKEN")
    secret.set_value("hunter2")
    secret.save()
    # Stored with the public default's derived key by an earlier version: still read, and rotated too.
    legacy = RepoSecret.objects.create(repo=repo, name="LEGACY", encrypted_value=Fernet(
        crypto.derived_key("insecure-embedded-default-change-me")).encrypt(b"old-value").decode())

    settings.SECRETS_ENCRYPTION_KEYS = [new, old]
    assert repo.secrets_dict() == {"NPM_TOKEN": "hunter2", "LEGACY": "old-value"}
    call_command("rotate_secrets")
    settings.SECRETS_ENCRYPTION_KEYS = [new]
    for row in (secret, legacy):
        row.refresh_from_db()
        Fernet(new).decrypt(row.encrypted_value.encode())  # now under the new key alone
    assert repo.secrets_dict() == {"NPM_TOKEN": "hunter2", "LEGACY": "old-value"}
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    settings.SECRET_KEY = "another-machine"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        secret.value()
