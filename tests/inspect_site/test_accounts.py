"""Accounts: sign-up closed unless invited or at an allowed domain, login, every page behind login, GitHub wired
in, staff-only admin."""

import os
import re
import subprocess
import sys
from urllib.parse import parse_qs, urlparse

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command

from accounts.models import Invitation

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def sign_up(client, username: str, email: str, password2: str = PASSWORD):
    return client.post("/accounts/signup/", {"username": username, "email": email, "password1": PASSWORD,
                                             "password2": password2})


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


def test_sign_up_is_closed_by_default(client):
    page = client.get("/accounts/signup/")
    assert b"Sign Up Closed" in page.content or b"closed" in page.content.lower()
    response = sign_up(client, "eve", "eve@example.com")
    assert not User.objects.filter(username="eve").exists()
    assert client.get("/").status_code == 302, response.status_code


def test_the_first_account_is_made_with_createsuperuser_and_signs_in(client, settings, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", "--noinput", "--username", "boss", "--email", "boss@example.com")
    response = client.post("/accounts/login/", {"login": "boss", "password": PASSWORD})
    assert response.status_code == 302 and client.get("/").status_code == 200


def test_an_invitation_lets_its_holder_sign_up_once(client, settings):
    invitation, token = Invitation.make("")
    assert client.get(f"/accounts/invitation/{token}/")["Location"] == "/accounts/signup/"
    response = sign_up(client, "ada", "ada@example.com")
    assert response.status_code == 302 and client.get("/").status_code == 200  # signed in right away
    invitation.refresh_from_db()
    assert invitation.used_by == User.objects.get(username="ada") and invitation.used_at is not None

    # Used: a second person with the same link gets nowhere, and changes nothing.
    other = client.__class__()
    assert other.get(f"/accounts/invitation/{token}/").status_code == 404
    sign_up(other, "bob", "bob@example.com")
    assert not User.objects.filter(username="bob").exists()

    client.logout()
    response = client.post("/accounts/login/", {"login": "ada", "password": PASSWORD})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200 and b"ada" in home.content


def test_an_invitation_for_an_address_takes_only_that_address_and_counts_it_verified(client):
    _, token = Invitation.make("Ada@Example.com")
    client.get(f"/accounts/invitation/{token}/")
    refused = sign_up(client, "mallory", "mallory@example.com")
    assert refused.status_code == 200 and b"This invitation is for ada@example.com" in refused.content
    assert not User.objects.filter(username="mallory").exists()
    assert sign_up(client, "ada", "ada@example.com").status_code == 302
    assert EmailAddress.objects.get(user__username="ada").verified


@pytest.mark.parametrize("token", ["x", "no-such-invitation-token", "a" * 500])
def test_an_unknown_or_expired_invitation_opens_nothing(client, token):
    assert client.get(f"/accounts/invitation/{token}/").status_code == 404
    invitation, old = Invitation.make("")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=invitation.created_at)
    assert client.get(f"/accounts/invitation/{old}/").status_code == 404
    sign_up(client, "eve", "eve@example.com")
    assert not User.objects.exists()


def test_an_allowed_domain_signs_up_once_its_address_is_verified(client, settings):
    settings.SIGNUP_EMAIL_DOMAINS = ["example.com"]
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    refused = sign_up(client, "eve", "eve@elsewhere.test")
    assert b"Sign-up is open only to addresses at example.com" in refused.content
    assert not User.objects.filter(username="eve").exists()

    response = sign_up(client, "ada", "ada@example.com")
    assert response.status_code == 302
    assert client.get("/").status_code == 302  # not signed in until the address is shown to be hers
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+", mail.outbox[-1].body)[0]
    confirm = urlparse(link).path
    client.post(confirm)
    assert EmailAddress.objects.get(user__username="ada").verified
    response = client.post("/accounts/login/", {"login": "ada", "password": PASSWORD})
    assert response.status_code == 302 and client.get("/").status_code == 200

    # An account an admin made (createsuperuser, the admin pages) is vouched for: no verification asked.
    client.logout()
    User.objects.create_user("boss", "boss@example.com", PASSWORD)
    response = client.post("/accounts/login/", {"login": "boss", "password": PASSWORD})
    assert response.status_code == 302 and client.get("/").status_code == 200


def test_invitations_are_made_in_the_admin_and_mailed(client, django_user_model):
    admin = django_user_model.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    client.force_login(admin)
    response = client.post("/admin/accounts/invitation/add/", {"email": "new@example.com", "days": "3"},
                           follow=True)
    assert response.status_code == 200
    invitation = Invitation.objects.get()
    assert invitation.email == "new@example.com" and invitation.created_by == admin
    link = re.search(r"https?://\S+/accounts/invitation/(\S+)/", mail.outbox[-1].body)
    assert link and Invitation.find(link[1]) == invitation
    assert link[1] in response.content.decode()  # shown to the admin once
    assert link[1] not in invitation.token_hash


def test_sign_up_with_mismatched_passwords_creates_nobody(client):
    _, token = Invitation.make("")
    client.get(f"/accounts/invitation/{token}/")
    response = sign_up(client, "bob", "bob@example.com", password2="nope")
    assert response.status_code == 200
    assert not User.objects.filter(username="bob").exists()
    assert Invitation.objects.get().used_at is None


def test_a_wrong_password_does_not_sign_in(client):
    User.objects.create_user("ada", "ada@example.com", PASSWORD)
    response = client.post("/accounts/login/", {"login": "ada", "password": "wrong"})
    assert response.status_code == 200
    assert client.get("/").status_code == 302


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


def github_sign_up(client, emails: list[tuple[str, bool]], username: str = "octo", token: str = ""):
    """What allauth's GitHub flow hands the adapter once GitHub has answered (GitHub itself is not reachable
    here): a new user with the addresses GitHub lists, and whether GitHub says each is verified, and the
    person's GitHub token."""
    from allauth.socialaccount.models import SocialAccount, SocialLogin, SocialToken
    from django.test import RequestFactory

    from accounts.adapter import SocialAccountAdapter

    request = RequestFactory().get("/accounts/github/login/callback/")
    request.session = client.session
    login = SocialLogin(user=User(username=username, email=emails[0][0] if emails else ""),
                        account=SocialAccount(provider="github", uid=username),
                        email_addresses=[EmailAddress(email=email, verified=verified) for email, verified in emails])
    login.token = SocialToken(token=token) if token else None  # as allauth's OAuth2 callback sets it
    adapter = SocialAccountAdapter(request)
    if not adapter.is_open_for_signup(request, login):
        return None
    return adapter.save_user(request, login)


def test_github_sign_up_follows_the_same_rule_and_uses_the_invitation_up(client, settings):
    assert github_sign_up(client, [("eve@example.com", True)]) is None  # closed
    settings.SIGNUP_EMAIL_DOMAINS = ["example.com"]
    assert github_sign_up(client, [("eve@example.com", False)]) is None  # GitHub does not vouch for it
    assert github_sign_up(client, [("ada@example.com", True)], "ada-gh") is not None
    settings.SIGNUP_EMAIL_DOMAINS = []

    invitation, token = Invitation.make("bob@example.org")
    client.get(f"/accounts/invitation/{token}/")
    assert github_sign_up(client, [("mallory@example.org", True)], "mallory") is None  # not the invited address
    assert github_sign_up(client, [("bob@example.org", True)], "bob-gh") is not None
    invitation.refresh_from_db()
    assert invitation.used_by.username == "bob-gh"
    client.get(f"/accounts/invitation/{token}/")  # the same link again
    assert github_sign_up(client, [("bob@example.org", True)], "bob-again") is None
    assert not User.objects.filter(username__in=["mallory", "bob-again", "octo"]).exists()


@pytest.fixture
def github(settings):
    from tests.support.github_double import GitHubDouble

    double = GitHubDouble()
    settings.GITHUB_URL = double.url  # as for a GitHub Enterprise Server: its API under /api/v3
    yield double
    double.stop()


def test_github_sign_up_is_open_to_the_active_members_of_the_allowed_organisations(client, settings, github):
    github.memberships = {"gho_ada": {"acme": "active"}, "gho_eve": {"other": "active"},
                          "gho_pat": {"acme": "pending"}}
    unverified = [("someone@example.net", False)]
    assert github_sign_up(client, unverified, "ada-gh", token="gho_ada") is None  # no organisation is allowed yet
    assert github.requests == []  # and GitHub was not even asked
    settings.SIGNUP_GITHUB_ORGS = ["acme"]
    assert github_sign_up(client, unverified, "eve-gh", token="gho_eve") is None  # another organisation
    assert github_sign_up(client, unverified, "pat-gh", token="gho_pat") is None  # invited, not yet a member
    assert github_sign_up(client, unverified, "bad-gh", token="gho_revoked") is None  # GitHub refuses the token
    assert github_sign_up(client, unverified, "ada-gh", token="gho_ada") is not None
    assert ("/api/v3/user/memberships/orgs/acme", "Bearer gho_ada") in github.requests
    assert not User.objects.filter(username__in=["eve-gh", "pat-gh", "bad-gh"]).exists()
    github.stop()  # GitHub down: nobody gets in by membership
    assert github_sign_up(client, unverified, "ada-two", token="gho_ada") is None


def github_settings(**env: str) -> list[str]:
    """The GitHub provider's scopes and its GITHUB_URL (or None) as settings.py makes them from `env`."""
    code = ("import django; django.setup(); from django.conf import settings; "
            "github = settings.SOCIALACCOUNT_PROVIDERS['github']; print(*github['SCOPE'], github.get('GITHUB_URL'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "inspect_site.settings", **env})
    return done.stdout.split()


def test_github_sign_in_asks_for_read_org_only_where_organisations_are_allowed():
    plain = github_settings()
    assert "read:org" not in plain and plain[-1] == "None"  # github.com: allauth's own default
    allowed = github_settings(SIGNUP_GITHUB_ORGS="Acme", GITHUB_URL="https://github.example.com/")
    assert "read:org" in allowed and allowed[-1] == "https://github.example.com"
