"""HTTPS=1: the platform's cookies are Secure and carry the __Host- prefix, and the proxies still keep them
from every sandbox (the settings are read at start, hence a process of their own)."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

SHOW = ("import json; from django.conf import settings as s; from ide.headers import platform_cookies; "
        "from django.test import RequestFactory; "
        "r = RequestFactory().get('/', HTTP_X_FORWARDED_PROTO='https'); "
        "print(json.dumps([s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, sorted(platform_cookies()), r.is_secure()]))")


def settings_with(https: str) -> list:
    env = {**os.environ, "HTTPS": https}
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", SHOW], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("https, expected", [
    ("1", ["__Host-sessionid", "__Host-csrftoken", True, True, True]),
    ("0", ["sessionid", "csrftoken", False, False, False]),
])
def test_over_https_the_platforms_cookies_cannot_be_set_by_another_host(https, expected):
    session, csrf, session_secure, csrf_secure, hidden, secure = settings_with(https)
    assert [session, csrf, session_secure, csrf_secure, secure] == expected
    # Whatever their names, a sandbox's service never sees them and cannot set them.
    assert {session, csrf} <= set(hidden)


def test_the_production_settings_pass_djangos_deployment_checks():
    env = {**os.environ, "PRODUCTION": "1", "HTTPS": "1", "DEBUG": "0", "ALLOWED_HOSTS": "inspect.example.com",
           "SECRET_KEY": secrets.token_urlsafe(50), "SECRETS_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
