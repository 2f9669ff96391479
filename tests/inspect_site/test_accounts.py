"""Accounts: local sign-up and login, every page behind login, GitHub wired in, staff-only admin."""

from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", "/sandboxes/images/1/log"])
def test_pages_require_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_admin_requires_staff(client):
    User.objects.create_user("dev", "dev@example.com", "a-long-password-1")
    client.login(username="dev", password="a-long-password-1")
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_sign_up_then_sign_in(client):
    response = client.post("/accounts/signup/", {
        "username": "ada", "email": "ada@example.com",
        "password1": "correct-horse-battery", "password2": "correct-horse-battery",
    })
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # signed in right away

    client.logout()
    response = client.post("/accounts/login/", {"login": "ada", "password": "correct-horse-battery"})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200 and b"ada" in home.content


def test_a_wrong_password_does_not_sign_in(client):
    User.objects.create_user("ada", "ada@example.com", "correct-horse-battery")
    response = client.post("/accounts/login/", {"login": "ada", "password": "wrong"})
    assert response.status_code == 200
    assert client.get("/").status_code == 302


def test_sign_up_with_mismatched_passwords_creates_nobody(client):
    response = client.post("/accounts/signup/", {
        "username": "bob", "email": "bob@example.com", "password1": "correct-horse-battery", "password2": "nope",
    })
    assert response.status_code == 200
    assert not User.objects.filter(username="bob").exists()


def test_github_login_sends_the_user_to_github_with_our_client_id(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "github": {**settings.SOCIALACCOUNT_PROVIDERS["github"],
                   "APP": {"client_id": "gh-client-123", "secret": "gh-secret"}}
    }
    response = client.post("/accounts/github/login/")
    assert response.status_code == 302
    target = urlparse(response["Location"])
    query = parse_qs(target.query)
    assert target.netloc == "github.com" and target.path == "/login/oauth/authorize"
    assert query["client_id"] == ["gh-client-123"]
    assert "repo" in query["scope"][0]
    assert "gh-secret" not in response["Location"]
