"""GitHub sign-in keeps the person's token, encrypted, for opening pull requests as them (pulls/signin.py,
pulls/tokens.py). Each test drives allauth's real GitHub flow through the test client against the GitHub double:
the site sends the browser to the double's authorize page, which sends it back to the callback with a code, which
allauth trades for a token and reads /user and /user/emails with. allauth keeps no token; GitHubToken does."""

from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from allauth.socialaccount.models import SocialAccount, SocialToken
from django.contrib.auth.models import User
from django.utils import timezone

from pulls import tokens
from pulls.models import GitHubToken
from sandboxes import crypto

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"
CONNECTIONS = "/accounts/3rdparty/"


@pytest.fixture(autouse=True)
def site(settings, github):
    """Sign-up (closed) open to example.com addresses, with the settings settings.py makes from
    SIGNUP_EMAIL_DOMAINS=example.com: an email is required and must be verified (GitHub vouches for it)."""
    settings.SIGNUP_EMAIL_DOMAINS = ["example.com"]
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]


def through_github(client, github, login: str = "ada", process: str = "") -> list:
    """Sign in to (or, with process="connect", connect) GitHub as `login`, as a browser would: the site's login
    view, the double's authorize page, the site's callback. The responses of the site, last the callback's."""
    github.sign_in_as = login
    start = client.post("/accounts/github/login/" + (f"?process={process}" if process else ""))
    assert start.status_code == 302, start.content
    assert start["Location"].startswith(github.url + "/login/oauth/authorize?")
    authorized = httpx.get(start["Location"], follow_redirects=False)  # the browser at GitHub
    assert authorized.status_code == 302, authorized.text
    callback = urlsplit(authorized.headers["Location"])
    assert callback.path == "/accounts/github/login/callback/" and "code=" in callback.query
    done = client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 302, done.content
    return [start, done]


def issued(github, login: str = "ada") -> str:
    """The access token the double issued to `login` last (a live one)."""
    return [token for token, who in github.tokens.items() if who == login][-1]


def expire(user) -> None:
    GitHubToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(minutes=1))


def with_password(username: str = "carol", email: str = "carol@example.com") -> User:
    return User.objects.create_user(username, email, PASSWORD)


def sign_in_with_password(client, username: str = "carol") -> None:
    """Through allauth's login form, so allauth knows how and when they authenticated (for reauthentication)."""
    assert client.post("/accounts/login/", {"login": username, "password": PASSWORD}).status_code == 302


def test_github_sign_up_signs_in_and_keeps_only_an_encrypted_copy_of_the_token(client, github):
    responses = through_github(client, github)
    home = client.get("/")
    assert home.status_code == 200  # signed in
    user = User.objects.get(socialaccount__provider="github", socialaccount__uid="101")
    assert user.email == "ada@example.com"
    token = issued(github)
    record = GitHubToken.objects.get(user=user)
    assert (record.login, record.github_id, record.broken_at) == ("ada", 101, None)
    raw = GitHubToken.objects.values_list("access_encrypted", flat=True).get(user=user)
    assert token not in raw and crypto.decrypt(raw) == token
    assert tokens.access_token_for(user) == token and GitHubToken.objects.get(user=user).login == "ada"
    assert not SocialToken.objects.exists()  # allauth keeps none
    for response in [*responses, home]:
        assert token not in response.content.decode() and token not in response.get("Location", "")
    assert all(token not in cookie.value for cookie in client.cookies.values())


def test_a_password_account_connects_github_from_its_connections_page(client, github):
    carol = with_password()
    sign_in_with_password(client)
    home = client.get("/").content.decode()
    assert f'href="{CONNECTIONS}"' in home  # the navigation leads to the connections page
    page = client.get(CONNECTIONS)
    assert page.status_code == 200 and "/accounts/github/login/?process=connect" in page.content.decode()

    done = through_github(client, github, "bob", process="connect")[-1]
    assert done["Location"] == CONNECTIONS
    assert SocialAccount.objects.get(user=carol, provider="github").uid == "102"
    record = GitHubToken.objects.get(user=carol)
    assert (record.login, record.github_id, record.access_token) == ("bob", 102, issued(github, "bob"))
    assert not SocialToken.objects.exists()


def test_an_expiring_token_is_refreshed_and_github_revokes_the_old_pair(client, github):
    github.expiring_tokens = True
    through_github(client, github)
    user = User.objects.get(username__iexact="ada")
    record = GitHubToken.objects.get(user=user)
    first, first_refresh = record.access_token, record.refresh_token
    assert first.startswith("ghu_") and first_refresh.startswith("ghr_")
    assert timedelta(hours=7) < record.expires_at - timezone.now() <= timedelta(hours=8)
    assert tokens.access_token_for(user) == first  # hours left: no refresh
    assert not any(form.get("grant_type") == "refresh_token" for form in github.token_requests)

    expire(user)
    token = tokens.access_token_for(user)
    assert token != first and token == issued(github)
    assert [form["refresh_token"] for form in github.token_requests if form.get("grant_type") == "refresh_token"] \
        == [first_refresh]
    record.refresh_from_db()
    assert record.access_token == token and record.expires_at > timezone.now() + timedelta(hours=7)
    assert record.refresh_token != first_refresh and record.refresh_token in github.refresh_tokens
    assert first not in github.tokens and first_refresh not in github.refresh_tokens  # GitHub revoked the old pair
    assert first_refresh not in record.refresh_encrypted and token not in record.access_encrypted


def test_a_refused_refresh_marks_the_token_broken_until_the_person_signs_in_again(client, github):
    github.expiring_tokens = True
    through_github(client, github)
    user = User.objects.get(username__iexact="ada")
    record = GitHubToken.objects.get(user=user)
    github.refresh_tokens.pop(record.refresh_token)  # revoked at GitHub (the person removed the app, say)
    expire(user)

    with pytest.raises(tokens.NoToken, match="connect GitHub again") as refused:
        tokens.access_token_for(user)
    assert CONNECTIONS in str(refused.value)
    record.refresh_from_db()
    assert record.broken_at is not None
    with pytest.raises(tokens.NoToken, match="connect GitHub again"):  # stays broken, without asking GitHub again
        tokens.access_token_for(user)
    assert len([form for form in github.token_requests if form.get("grant_type") == "refresh_token"]) == 1

    client.logout()
    through_github(client, github)  # signing in again, an existing account: allauth's social_account_updated
    assert client.get("/").status_code == 200
    record.refresh_from_db()
    assert record.broken_at is None and record.user == user
    assert tokens.access_token_for(user) == issued(github) and record.access_token == issued(github)


def test_a_refresh_without_github_s_answer_leaves_the_token_for_the_next_try(client, github, settings):
    github.expiring_tokens = True
    through_github(client, github)
    user = User.objects.get(username__iexact="ada")
    expire(user)
    settings.GITHUB_URL = github.url + "/down"  # the double answers a 404 page there, as GitHub in an outage
    with pytest.raises(tokens.NoToken, match="try again in a moment"):
        tokens.access_token_for(user)
    assert GitHubToken.objects.get(user=user).broken_at is None
    settings.GITHUB_URL = github.url
    assert tokens.access_token_for(user) == issued(github)


def test_disconnecting_github_deletes_the_token(client, github):
    carol = with_password()
    sign_in_with_password(client)
    through_github(client, github, "ada", process="connect")
    assert GitHubToken.objects.filter(user=carol).exists()
    account = SocialAccount.objects.get(user=carol)
    page = client.get(CONNECTIONS).content.decode()
    assert f'value="{account.pk}"' in page  # allauth's remove form lists the account

    response = client.post(CONNECTIONS, {"account": account.pk})
    assert response.status_code == 302, response.content
    assert not SocialAccount.objects.filter(user=carol).exists()
    assert not GitHubToken.objects.filter(user=carol).exists()
    with pytest.raises(tokens.NoToken, match="Connect your GitHub account first"):
        tokens.access_token_for(carol)


def test_without_a_token_the_message_says_where_to_connect_github():
    with pytest.raises(tokens.NoToken) as missing:
        tokens.access_token_for(with_password())
    assert f"Connect your GitHub account first, at {CONNECTIONS}" in str(missing.value)
    with pytest.raises(tokens.NoToken, match=CONNECTIONS):
        tokens.access_token_for(None)


def test_an_invitation_lets_its_person_sign_up_with_github_where_no_domain_is_open(client, github, settings):
    from accounts.models import Invitation

    settings.SIGNUP_EMAIL_DOMAINS, settings.ACCOUNT_EMAIL_VERIFICATION = [], "none"
    settings.ACCOUNT_SIGNUP_FIELDS = ["email", "username*", "password1*", "password2*"]
    _invitation, link = Invitation.make("ada@example.com")
    client.get(f"/accounts/invitation/{link}/")
    through_github(client, github, "ada")
    assert client.get("/").status_code == 200
    assert GitHubToken.objects.get(user__email="ada@example.com").login == "ada"
